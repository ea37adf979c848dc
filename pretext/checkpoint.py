"""Loading a suite checkpoint back into a colorizer: its net, gamut, prior and config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from pretext.color import Gamut


@dataclass
class Colorizer:
    net: nn.Module
    gamut: Gamut
    temperature: float
    loss: str
    config: dict
    path: Path


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
