"""Export a plain encoder checkpoint, optionally rescaled as the authors did before transfer.

    python pretext/export.py ckpt=RUN/checkpoints/last.ckpt                # rescale=true by default
    python pretext/export.py ckpt=... rescale=false out=encoder.pt
    python pretext/export.py init=kraehenbuehl init_data=/imagenet/train out=kraehenbuehl.pt

Rescaling (SPEC.md, Networks): BatchNorm folded into the convs, then every layer scaled so the
gradient-to-weight ratios are equal (pretext/inits.py), on a calibration batch of real images.
The file keeps the method's name; downstream/encoder.py loads it like any checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from pretext.cli import entry

log = logging.getLogger("pretext.export")


def export(cfg: DictConfig) -> Path:
    from pretext.checkpoint_files import save_encoder
    from pretext.encoders import calibration_batch, load_encoder
    from pretext.inits import gradient_weight_ratios, rescale_for_transfer

    net, info = load_encoder(cfg.ckpt, cfg.init, cfg.init_channels, cfg.seed, cfg.init_data)
    extra = {"source": info.source, "source_digest": info.digest, "rescaled": bool(cfg.rescale)}
    if cfg.rescale:
        x = calibration_batch(cfg.calib_root, cfg.calib_images, cfg.calib_crop, net.in_channels)
        rescale_for_transfer(net, x, seed=cfg.seed)
        ratios = gradient_weight_ratios(net, x, seed=cfg.seed)
        extra["calibration"] = {"root": cfg.calib_root or "embedded sample photos", "images": len(x),
                                "crop": int(cfg.calib_crop), "ratios": ratios}  # fmt: skip
        log.info("rescaled on %d images; gradient/weight ratios now %s", len(x),
                 ", ".join(f"{k} {v:.4g}" for k, v in ratios.items()))  # fmt: skip
    if cfg.out:
        out = Path(cfg.out)
    elif cfg.ckpt:
        out = Path(cfg.ckpt).with_name(Path(cfg.ckpt).stem + ("_encoder_rescaled.pt" if cfg.rescale else "_encoder.pt"))
    else:
        out = Path("outputs/encoders") / f"{cfg.init}{'_rescaled' if cfg.rescale else ''}.pt"
    save_encoder(net, info.method, out, extra=extra)
    log.info("%s encoder (%s input, layers up to %s) -> %s", info.method, info.input, info.layers[-1], out)
    return out


@entry("export")
def main(cfg: DictConfig) -> None:
    print(f"encoder: {export(cfg)}")


if __name__ == "__main__":
    main()
