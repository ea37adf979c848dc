"""The one error style of every entry point: a user's mistake (a misspelt key, a missing path, a file
of the wrong kind) ends in one or two lines saying what is wrong and what to do, exit status 2, no
traceback (``HYDRA_FULL_ERROR=1`` shows it), and nothing half-written left behind.

    @entry("pretext")
    def main(cfg): ...

wraps ``hydra.main`` (configs in conf/). Before Hydra runs, the command line's overrides are composed
once: a key that does not exist is named with the valid keys at its level and the closest one.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF = Path(__file__).resolve().parents[1] / "conf"
# What a user's mistake raises; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError, OmegaConfBaseException)  # fmt: skip
EXTENSIBLE = ("callbacks", "logger", "hydra")  # where `+key=value` may add a component


class UserError(Exception):
    """A mistake in the command line, with its message."""


def fail(message: str, traceback_hint: bool = True) -> None:
    hint = " (HYDRA_FULL_ERROR=1 shows the traceback)" if traceback_hint else ""
    print(f"error: {message}{hint}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------------- overrides
def _valid_keys_message(key: str, cfg: DictConfig) -> str:
    parts = key.lstrip("+~").split(".")
    node, path = cfg, []
    for p in parts[:-1]:
        child = node.get(p) if isinstance(node, DictConfig) else None
        if not isinstance(child, DictConfig):
            break
        node, path = child, [*path, p]
    bad = parts[len(path)]
    valid = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
    where = ".".join(path) or "the top level"
    close = difflib.get_close_matches(bad, valid, n=1)
    hint = f" Did you mean {'.'.join([*path, close[0]])}?" if close else ""
    return f"{key.lstrip('+')} is not a key: {where} has {', '.join(valid)}.{hint}"


def config_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the overrides, the folders named by Hydra's ``--config-dir`` / ``-cd``) of a command line."""
    overrides, dirs, it = [], [], iter(argv)
    for a in it:
        if a in ("--config-dir", "-cd"):
            dirs.append(next(it, ""))
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        elif not a.startswith("-"):
            overrides.append(a)
    return overrides, dirs


def check_overrides(config_name: str, overrides: list[str], extra_dirs: list[str] = ()) -> None:
    """Compose ``config_name`` with ``overrides`` as Hydra will (``extra_dirs``: what ``--config-dir``
    adds to the search path); a mistake raises :class:`UserError`, and so does an output folder that
    cannot be written (Hydra would create it first)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    dirs = ",".join(f"file://{Path(d).resolve()}" for d in extra_dirs)
    search = [f"hydra.searchpath=[{dirs}]"] if extra_dirs else []
    ours = search + [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for i, override in enumerate(ours):  # the first override that does not compose is the culprit
            try:
                compose(config_name, overrides=ours[: i + 1])
            except MissingConfigException as err:
                group = override.lstrip("+~").split("=", 1)[0]
                options = GlobalHydra.instance().config_loader().get_group_options(group)
                raise UserError(f"{override}: no such option; valid: {', '.join(options) or '(none)'}") from err
            except HydraException as err:
                base = compose(config_name, overrides=ours[:i])
                raise UserError(_valid_keys_message(override.split("=", 1)[0], base)) from err
        parsed = OverridesParser.create().parse_overrides(ours)
        for i, o in enumerate(parsed):  # `+a.b=v` adds a key nothing would read
            key = o.key_or_group
            if o.is_add() and "." in key and key.split(".")[0] not in EXTENSIBLE:
                base = compose(config_name, overrides=ours[:i] + ours[i + 1 :])
                if OmegaConf.select(base, key) is None:
                    raise UserError(_valid_keys_message(key, base) + " (a key added with + is read by nothing)")
        cfg = compose(config_name, overrides=ours, return_hydra_config=True)
        try:
            check_writable(*_outputs(cfg), OmegaConf.select(cfg, "hydra.run.dir"))
        except PermissionError as err:
            raise UserError(str(err)) from err


@contextlib.contextmanager
def user_errors():
    """The same error style for an argparse entry point: ``with user_errors(): main()``."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 (a user's mistake, or a bug that keeps its traceback)
        mistake = user_error_of(err)
        if mistake is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(short(mistake))


def short(err: BaseException) -> str:
    """The message of a mistake; one raised in a DataLoader worker comes wrapped in its traceback."""
    text = str(err)
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
    return text


# ----------------------------------------------------------------------------------- outputs
def _outputs(cfg: DictConfig) -> list[Path]:
    """The folders this run may write that are named at its start (an evaluation names its run folder
    later: ``removed_on_mistake`` guards it there): output, cache and suite folders, Hydra's folder."""
    out = [cfg.get(k) for k in ("output", "out", "cache_dir", "root") if isinstance(cfg.get(k), str)]
    if cfg.get("run_name", "") is not None and isinstance(cfg.get("run_dir"), str):
        out.append(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        out.append(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not under hydra.main
        pass
    return [Path(p) for p in out if p]


def _holds_work(path: Path) -> bool:
    """Whether a folder holds more than what Hydra writes when a run starts (its config folder, logs)."""
    return path.is_dir() and any(p.name not in ("hydra", ".hydra") and p.suffix != ".log" for p in path.iterdir())


@contextlib.contextmanager
def removed_on_mistake(*paths: str | Path | None):
    """Folders a run is about to write: if a user's mistake ends it, those that held no work before
    (nothing but Hydra's config and logs) and hold no checkpoint or result now are removed."""
    paths = [Path(p) for p in paths if p]
    fresh = [p for p in paths if not p.is_file() and not _holds_work(p)]
    try:
        yield
    except Exception as err:
        if user_error_of(err) is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            for path in fresh:
                if path.is_dir() and not any(path.rglob("*.ckpt")) and not any(path.rglob("results.jsonl")):
                    shutil.rmtree(path, ignore_errors=True)
        raise


def check_writable(*paths: str | Path | None) -> None:
    """Each path can be written: it is there and writable, or its nearest existing ancestor is a
    writable folder; else a clear error."""
    for path in (Path(p) for p in paths if p):
        if path.exists():
            ok, where = os.access(path, os.W_OK), path
        else:
            where = path.parent
            while not where.exists() and where != where.parent:
                where = where.parent
            ok = where.is_dir() and os.access(where, os.W_OK)
        if not ok:
            raise PermissionError(f"{path} cannot be written ({where} is not a writable folder): choose another "
                                  "output or run folder")  # fmt: skip


def user_error_of(err: BaseException) -> BaseException | None:
    """The user's mistake behind ``err`` (Hydra wraps what a constructor raised), or None."""
    if isinstance(err, InstantiationException) and err.__cause__ is not None:
        return user_error_of(err.__cause__)
    return err if isinstance(err, USER_ERRORS) else None


def entry(config_name: str) -> Callable:
    def decorate(fn: Callable[[DictConfig], object]) -> Callable[[], None]:
        @functools.wraps(fn)
        def guarded(cfg: DictConfig):
            try:
                with removed_on_mistake(*_outputs(cfg)):
                    check_writable(*_outputs(cfg))
                    return fn(cfg)
            except Exception as err:  # noqa: BLE001 (sorted below: a user's mistake, or a bug)
                mistake = user_error_of(err)
                if mistake is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                fail(short(mistake))

        runner = hydra.main(config_path=str(CONF), config_name=config_name, version_base="1.3")(guarded)

        @functools.wraps(fn)
        def main() -> None:
            if os.environ.get("HYDRA_FULL_ERROR") != "1":
                try:
                    check_overrides(config_name, *config_dirs(sys.argv[1:]))
                except UserError as err:
                    fail(str(err), traceback_hint=False)
            runner()

        return main

    return decorate
