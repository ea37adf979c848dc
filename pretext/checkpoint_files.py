"""Reading and writing the suite's checkpoint files: a Lightning checkpoint of any pretext task, a
colorizer read back from one, and the plain encoder file that ``pretext/export.py`` writes.

(Saving checkpoints during training is ``pretext/run.py``'s: atomic writes, stop on a signal.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from pretext.color import Gamut
from pretext.nets import ALEXNET_LAYERS, AlexNetCC

ENCODER_FORMAT = "colorization-suite-encoder/1"


def read_checkpoint(path: str | Path) -> dict:
    """A suite file read with ``torch.load(weights_only=True)``, or a clear error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files, non-checkpoints
        raise ValueError(f"{path} is not a checkpoint this suite can read ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a checkpoint this suite can read")
    return ckpt


REPO = Path(__file__).resolve().parents[1]


def repo_path(path: str | Path) -> str:
    """A path as results name it: relative to the repository when inside it or beside it (``../shared``,
    as the configs name the data; records then read the same on every machine), else absolute."""
    path = Path(path).expanduser().resolve()
    if path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    if path.is_relative_to(REPO.parent) and REPO.parent != Path(REPO.anchor):
        return str(Path("..") / path.relative_to(REPO.parent))
    return str(path)


def file_digest(path: str | Path) -> str:
    """sha256 of a file (first 16 hex): what names a checkpoint in results."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ colorizer
@dataclass
class Colorizer:
    net: nn.Module
    gamut: Gamut
    temperature: float
    loss: str
    config: dict
    path: Path


def load_colorizer(path: str | Path, device: str | torch.device = "cpu", gamut: Gamut | None = None) -> Colorizer:
    """A checkpoint written by ``pretext/train.py`` (``torch.load(weights_only=True)``).

    ``gamut``: when given, the checkpoint must have been trained on it (else a clear error)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if "colorization" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a colorization checkpoint of this suite (written by pretext/train.py)")
    meta = ckpt["colorization"]
    saved = Gamut(meta["centers"], meta["prior"], meta.get("gamut_source", ""))
    if gamut is not None and not torch.equal(gamut.centers, saved.centers):
        raise ValueError(
            f"{path} was trained on a gamut of {saved.Q} bins ({saved.source}), not the {gamut.Q} requested "
            f"({gamut.source}): drop the gamut option or use the checkpoint's"
        )
    config = meta["config"]
    out_channels = 2 if meta["loss"] == "l2" else saved.Q
    net = instantiate(config["model"]["net"], out_channels=out_channels)
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    return Colorizer(net.to(device).eval(), saved, float(meta["temperature"]), meta["loss"], config, path)


# ------------------------------------------------------------------------------------ encoders
def encoder_state(ckpt: dict, path: Path) -> tuple[dict, str]:
    """(AlexNetCC state dict, method) from a loaded checkpoint of any suite format."""
    if "encoder" in ckpt and isinstance(ckpt["encoder"], dict) and "state_dict" in ckpt["encoder"]:
        enc = ckpt["encoder"]
        if enc.get("format") != ENCODER_FORMAT:
            raise ValueError(f"{path}: encoder format {enc.get('format')!r}, this suite reads {ENCODER_FORMAT}")
        return enc["state_dict"], enc["method"]
    if "state_dict" in ckpt:  # a Lightning checkpoint of a pretext task: the encoder is its ``net``
        method = ckpt.get("suite", {}).get("method") or ("colorization" if "colorization" in ckpt else None)
        if method is None:
            raise ValueError(f"{path} is a Lightning checkpoint but not one of this suite's pretext tasks")
        prefix = "net."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        return state, method
    raise ValueError(
        f"{path} is neither a suite checkpoint (pretext/train.py) nor an exported encoder (pretext/export.py)"
    )


def net_from_state(state: dict) -> AlexNetCC:
    """An AlexNetCC shaped like ``state`` (input channels, fc width, depth), with its weights."""
    present = [n for n in ALEXNET_LAYERS if any(k.startswith(f"blocks.{n}.") for k in state)]
    if "blocks.conv1.0.weight" not in state:
        raise ValueError("the weights hold no AlexNet conv1 (blocks.conv1.0.weight): not an AlexNetCC encoder")
    last = max(present, key=ALEXNET_LAYERS.index)
    if last == "conv5":
        last = "pool5"  # pools have no weights: an encoder with conv5 has pool5
    in_channels = state["blocks.conv1.0.weight"].shape[1]
    fc_width = state["blocks.fc6.0.weight"].shape[0] if "blocks.fc6.0.weight" in state else 4096
    out_channels = state["blocks.fc8.weight"].shape[0] if "blocks.fc8.weight" in state else 1
    net = AlexNetCC(out_channels=out_channels, in_channels=in_channels, fc_width=fc_width, last=last)
    net.load_state_dict(state)
    return net.eval()


def save_encoder(net: AlexNetCC, method: str, path: str | Path, extra: dict | None = None) -> Path:
    """A plain encoder file that ``downstream/encoder.py`` reads (written atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"encoder": {"format": ENCODER_FORMAT, "method": method, "state_dict": state, **(extra or {})}}, tmp)
    tmp.replace(path)
    return path
