"""The README is executable: every command in its code blocks runs on the shipped data, with its
placeholders replaced and the quick-run overrides the README itself names appended; a command the
README marks `(config only: why)` has its config checked instead."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_path

pytestmark = pytest.mark.slow
README = (ROOT / "README.md").read_text()
MARK = re.compile(r"\(config only: [^)]+\)")


def commands() -> list[tuple[str, bool]]:
    """(command, config only) for every command line of the README's bash blocks."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            code = line.split("  #", 1)[0].strip() if "  #" in line else line.strip()
            if code and not code.startswith("#"):
                out.append((code, bool(MARK.search(line))))
    return out


def quick_overrides() -> dict[str, list[str]]:
    """The README's table: script -> the overrides appended for a quick run."""
    section = README.split("## Every command here runs", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|$", section, re.M)
    return {script: shlex.split(args) for script, args in rows}


def placeholders(tmp: Path, run: Path) -> dict[str, str]:
    imagenette = shared_path("data", "imagenette")
    voc = shared_path("data", "voc_mini", "VOCdevkit")
    photos = tmp / "photos"
    return {  # the longest first, so that /imagenet/train is replaced before /imagenet
        "/path/to/imagenet/train": str(imagenette / "train"),
        "/imagenet/train": str(imagenette / "train"), "/imagenet/val": str(imagenette / "val"),
        "/imagenet": str(imagenette), "/data/VOCdevkit": str(voc), "RUN/checkpoints/last.ckpt": str(run),
        "ckpt=...": f"ckpt={run}", "ckpt=CKPT": f"ckpt={run}", "album_colour/": str(tmp / "album_colour"),
        "album/": str(photos), "old.jpg": str(next(photos.glob("*.jpg"))), "colour.png": str(tmp / "colour.png"),
        "PHOTOS": str(photos), "LABELLED": str(imagenette), "NAME": "imagenette", "OUT": str(tmp / "dashboard"),
        "FILE": str(tmp / "f.pt"), "kraehenbuehl.pt": str(tmp / "kraehenbuehl.pt"),
    }  # fmt: skip


def expand(command: str, subs: dict[str, str], quick: dict[str, list[str]]) -> list[str]:
    pattern = "|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True))  # one pass, longest first
    command = re.sub(pattern, lambda m: subs[m.group(0)], command)
    words, optional = [], False
    for w in shlex.split(command):  # optional [...] parts (one word or several) are left out
        optional = optional or w.startswith("[")
        if not optional and w != "...":
            words.append(w)
        optional = optional and not w.endswith("]")
    if words[0] == "make":
        target = words[1]
        script = {"pretext": "pretext/train.py", "linear-probe": "downstream/linear_probe.py",
                  "svm-probe": "downstream/svm_probe.py", "report": "benchmarks/report.py",
                  "dashboard": "benchmarks/dashboard.py", "suite": "benchmarks/suite.py"}.get(target)  # fmt: skip
        extra = " ".join(quick.get(script, []))
        args = [w for w in words[2:] if not w.startswith("ARGS=")]
        given = next((w[5:] for w in words[2:] if w.startswith("ARGS=")), "")
        return ["make", "--no-print-directory", target, *args, f"ARGS={given} {extra}".strip()]
    if words[0] in ("python", ".venv/bin/python"):
        words[0] = sys.executable
    script = words[2].replace(".", "/") + ".py" if words[1] == "-m" else words[1]
    return [*words, *quick.get(script, [])]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """The placeholders' targets: a few photos, and a short pretext run (RUN)."""
    tmp = tmp_path_factory.mktemp("readme")
    photos = tmp / "photos"
    photos.mkdir()
    for i, src in enumerate(sorted((shared_path("data", "imagenette", "val")).rglob("*.JPEG"))[:6]):
        (photos / f"p{i}.jpg").write_bytes(src.read_bytes())
    quick = quick_overrides()
    run = tmp / "RUN"
    cmd = [sys.executable, "pretext/train.py", *quick["pretext/train.py"], f"run_dir={run}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp, run / "checkpoints" / "last.ckpt", quick


ENV = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
ALL = commands()


def test_the_readme_names_quick_overrides_for_every_script_it_runs():
    quick = quick_overrides()
    assert "pretext/train.py" in quick and "downstream/linear_probe.py" in quick
    assert len(ALL) > 30 and sum(c for _, c in ALL) < len(ALL) / 2  # most commands really run


@pytest.mark.parametrize(("command", "config_only"), ALL, ids=[f"{i:02d}" for i in range(len(ALL))])
def test_readme_command(command, config_only, setting):
    tmp, run, quick = setting
    argv = expand(command, placeholders(tmp, run), quick)
    if config_only:
        check_config(argv)
        return
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert out.returncode == 0, f"{' '.join(argv)}\n{out.stdout[-1500:]}\n{out.stderr[-3000:]}"


def check_config(argv: list[str]) -> None:
    """A command not run here: its overrides compose (Hydra scripts), its make target expands, or its
    shell script parses (``bash -n``)."""
    if argv[0] == "bash":
        out = subprocess.run(["bash", "-n", argv[1]], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return
    if argv[0] == "make":
        dry = subprocess.run([*argv[:2], "-n", *argv[2:]], cwd=ROOT, capture_output=True, text=True, env=ENV)
        assert dry.returncode == 0, dry.stderr
        lines = [x for x in dry.stdout.splitlines() if "/python " in x and "pip" not in x and "pytest" not in x]
        if not lines:  # a target that runs no script of ours (make test): it expands, that is all
            return
        argv = shlex.split(lines[-1])
    script = ROOT / (argv[2].replace(".", "/") + ".py" if argv[1] == "-m" else argv[1])
    name = re.search(r'@entry\("(\w+)"\)', script.read_text())
    if name is None:  # an argparse script: its options parse
        out = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return
    from pretext.cli import check_overrides

    check_overrides(name.group(1), [a for a in argv[2:] if "=" in a])
