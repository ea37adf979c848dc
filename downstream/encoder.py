"""The encoder every evaluation starts from: any suite checkpoint (any pretext task), a plain
exported encoder, or an initialisation baseline, frozen up to a named layer.

The input the encoder sees (L - 50 for a 1-channel encoder, RGB in [-1, 1] for a 3-channel one) is
read from the weights (conv1's input channels), never chosen by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from pretext.checkpoint import read_checkpoint
from pretext.color import rgb_to_lab
from pretext.nets import ALEXNET_LAYERS, AlexNetCC
from pretext.predict import net_input

ENCODER_FORMAT = "colorization-suite-encoder/1"
PROBE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")


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


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


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
    return net_input(rgb_to_lab(rgb), in_channels, rgb)


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


# ----------------------------------------------------------------------------------- files
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
    """A plain encoder checkpoint that :func:`load_encoder` reads (written atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"encoder": {"format": ENCODER_FORMAT, "method": method, "state_dict": state, **(extra or {})}}, tmp)
    tmp.replace(path)
    return path


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
        digest = f"{init}-seed{seed}" + (f"-{Path(init_data).name}" if calibration is not None else "")
        return net, EncoderInfo(init, f"init:{init}", digest, in_channels, layers)
    path = Path(ckpt).expanduser()
    loaded = read_checkpoint(path)
    state, method = encoder_state(loaded, path)
    net = net_from_state(state)
    info = EncoderInfo(method, str(path.resolve()), file_digest(path), net.in_channels, tuple(net.blocks._modules))
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
    out |= {k: suite[k] for k in ("input", "mask", "l2_only") if k in suite}
    return out


def check_layers(layers: Sequence[str], available: Sequence[str], valid: Sequence[str] = PROBE_LAYERS) -> None:
    bad = [x for x in layers if x not in valid]
    if bad:
        raise ValueError(f"layer {bad[0]!r} is not a probe layer; valid: {', '.join(valid)}, all")
    missing = [x for x in layers if x not in available]
    if missing:
        raise ValueError(f"the encoder has no layer {missing[0]!r}: its weights cover {', '.join(available)}")


def parse_layers(layer: str | Sequence[str], valid: Sequence[str] = PROBE_LAYERS) -> tuple[str, ...]:
    """``all`` (every layer in ``valid``), one name, a comma list or a sequence."""
    if isinstance(layer, str):
        names = valid if layer == "all" else tuple(x.strip() for x in layer.split(","))
    else:
        names = tuple(layer)
    check_layers(names, valid, valid)
    return tuple(names)


def encoder_from_config(cfg) -> tuple[AlexNetCC, EncoderInfo, tuple[str, ...]]:
    """What every evaluation starts with: its config's ``pool``, ``layer``, ``ckpt`` / ``init``
    checked, and the encoder loaded."""
    from downstream.reduce import POOLS

    if cfg.pool.name not in POOLS:
        raise ValueError(f"pool={cfg.pool.name!r} is not a reduction; valid: {', '.join(POOLS)}")
    layers = parse_layers(cfg.layer)
    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.get("init_data"))
    check_layers(layers, info.layers)
    return net, info, layers


class FrozenEncoder(nn.Module):
    """The encoder up to ``max(layers)``, frozen: no gradients, BatchNorm in eval mode whatever
    ``train()`` is called with. ``forward(rgb)`` takes uint8 RGB (N, 3, H, W) and returns
    ``{layer: features}`` from one pass."""

    def __init__(self, net: AlexNetCC, layers: Sequence[str]):
        super().__init__()
        check_layers(layers, tuple(net.blocks._modules), tuple(net.blocks._modules))
        deepest = max(layers, key=ALEXNET_LAYERS.index)
        keep = ALEXNET_LAYERS[: ALEXNET_LAYERS.index(deepest) + 1]
        net.blocks = net.blocks[: len(keep)]  # nothing deeper is computed or kept
        self.net, self.layers = net, tuple(layers)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(mode)
        self.net.eval()
        return self

    @torch.no_grad()
    def forward(self, rgb: Tensor) -> dict[str, Tensor]:
        x = net_input(rgb_to_lab(rgb), self.net.in_channels, rgb)
        return self.net(x, layers=self.layers)
