"""An encoder from any suite file or an initialisation baseline, with what identifies it in results.

- a Lightning checkpoint of any pretext task (its ``net``), or a plain exported encoder
  (``pretext/checkpoint_files.py`` holds both formats);
- ``gaussian`` / ``kraehenbuehl`` initialisations (``pretext/inits.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from pretext.checkpoint_files import encoder_state, file_digest, net_from_state, read_checkpoint, repo_path
from pretext.nets import AlexNetCC
from pretext.predict import encoder_input


@dataclass
class EncoderInfo:
    method: str  # colorization, context_encoder, supervised, gaussian, ...
    source: str  # the checkpoint path, or init:<name>
    digest: str  # sha256 of the checkpoint file (first 16 hex), or the init's name and seed
    in_channels: int
    layers: tuple[str, ...]  # the layers the weights cover
    extra: dict = field(default_factory=dict)

    @property
    def input(self) -> str:
        return "L" if self.in_channels == 1 else "RGB"


# ----------------------------------------------------------------------------------- inits
INITS = ("gaussian", "kraehenbuehl")
NEEDS_DATA = ("kraehenbuehl",)


def calibration_batch(root: str | Path | None, n: int = 64, crop: int = 227, in_channels: int = 1) -> Tensor:
    """``n`` images evenly spread over the folder ``root`` (recursive; None: the embedded sample
    photos), resized to 256 on the shorter side, centre-cropped, in the encoder's input space."""
    from pretext.data import SAMPLE_TRAIN, CropDataset, collate_crops, sample_photo
    from pretext.images import list_images

    if root is None:
        items = [sample_photo(name) for name in SAMPLE_TRAIN]
    else:
        files = list_images(root)
        items = files[:: max(1, len(files) // n)][:n]
    data = CropDataset(items, crop, 256, train=False, min_scale=None)
    rgb, skipped = collate_crops([data[i] for i in range(len(data))])
    if len(rgb) == 0:
        raise ValueError(f"no readable calibration image under {root}")
    return encoder_input(rgb, in_channels)


def init_encoder(
    name: str, in_channels: int = 1, seed: int = 0, last: str = "fc7", calibration: Tensor | None = None
) -> AlexNetCC:
    """An initialisation baseline: ``gaussian`` (N(0, 0.01^2)) or ``kraehenbuehl`` (data-dependent,
    on ``calibration``: a batch in the net's input space, e.g. from :func:`calibration_batch`)."""
    from pretext.inits import gaussian_init, kraehenbuehl_init

    if name not in INITS:
        raise ValueError(f"init={name!r} is not an initialisation; valid: {', '.join(INITS)}")
    if name in NEEDS_DATA and calibration is None:
        raise ValueError(f"init={name} is computed from images: set init_data=DIR (any folder of images)")
    torch.manual_seed(seed)
    net = AlexNetCC(out_channels=1, in_channels=in_channels, last=last)
    if name == "gaussian":
        gaussian_init(net)
    else:
        kraehenbuehl_init(net, calibration, seed=seed)
    return net.eval()


def load_encoder(
    ckpt: str | Path | None = None,
    init: str | None = None,
    in_channels: int = 1,
    seed: int = 0,
    init_data: str | Path | None = None,
) -> tuple[AlexNetCC, EncoderInfo]:
    """Exactly one of ``ckpt`` (any suite checkpoint or exported encoder) and ``init`` (a baseline
    initialisation: one of :data:`INITS`, with ``in_channels``, ``seed`` and, for the data-dependent
    one, the image folder ``init_data``)."""
    if (ckpt is None) == (init is None):
        raise ValueError("give exactly one of ckpt=PATH (a suite checkpoint or exported encoder) and init=NAME "
                         f"(valid inits: {', '.join(INITS)})")  # fmt: skip
    if init is not None:
        calibration = None
        if init in NEEDS_DATA and init_data is not None:
            calibration = calibration_batch(init_data, in_channels=in_channels)
        net = init_encoder(init, in_channels=in_channels, seed=seed, calibration=calibration)
        layers = tuple(net.blocks._modules)
        # what makes the net: the cache of its features and its records are keyed by it
        digest = f"{init}-{in_channels}ch-seed{seed}"
        if calibration is not None:  # the folder by name and by its path (two folders "train" differ; not its contents)
            place = hashlib.sha1(repo_path(init_data).encode()).hexdigest()[:8]
            digest += f"-{Path(init_data).name}-{place}"
        return net, EncoderInfo(init, f"init:{init}", digest, in_channels, layers)
    path = Path(ckpt).expanduser()
    loaded = read_checkpoint(path)
    state, method = encoder_state(loaded, path)
    net = net_from_state(state)
    info = EncoderInfo(method, repo_path(path), file_digest(path), net.in_channels, tuple(net.blocks._modules))
    info.extra = pretext_options(loaded)
    return net, info


def pretext_options(ckpt: dict) -> dict:
    """The pretext's protocol choices a result should name (gamut, k, loss; mask; rescaling)."""
    if "encoder" in ckpt:
        enc = ckpt["encoder"]
        return {k: enc[k] for k in ("rescaled", "source_digest") if k in enc}
    out = {}
    if "colorization" in ckpt:
        meta = ckpt["colorization"]
        color = meta.get("config", {}).get("color", {})
        out = {"gamut": meta.get("gamut_source"), "loss": meta.get("loss"), "k": color.get("k")}
    suite = ckpt.get("suite", {})
    out |= {k: v for k, v in suite.items() if k not in ("method", "config", "classes")}
    return out


