"""Every entry point answers a user's mistake the same way: one or two lines on stderr saying what is
wrong and what to do, exit status 2, no traceback, and no output left behind."""

import importlib
import logging
import re
import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg, write_file, write_png

from pretext.checkpoint_files import save_encoder
from pretext.color import Gamut
from pretext.nets import AlexNetCC
from tests.voc_fixture import write_devkit


def jpeg(path: Path, h: int = 40, w: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(str(path), encode_jpeg(torch.randint(0, 256, (3, h, w), dtype=torch.uint8)))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("in")
    jpeg(d / "images" / "a.jpg")
    jpeg(d / "images" / "b.jpg")
    (d / "empty").mkdir()
    (d / "unreadable").mkdir()
    for name in ("a.jpg", "b.png"):
        (d / "unreadable" / name).write_bytes(b"not an image at all")
    (d / "afile").write_text("a file, not a folder")
    (d / "not_ckpt.ckpt").write_text("# not a checkpoint\n")
    torch.manual_seed(0)
    encoder = save_encoder(AlexNetCC(out_channels=1, fc_width=16, last="fc7"), "colorization", d / "encoder.pt")
    torch.save({"state_dict": {"heads.conv1.fc.weight": torch.zeros(2, 3)}, "global_step": 1}, d / "probe.ckpt")
    net = AlexNetCC(in_channels=3, last="pool5")
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "global_step": 1,
                "suite": {"method": "context_encoder"}}, d / "context_encoder.ckpt")  # fmt: skip
    gamut = Gamut.from_srgb()
    colorizer = AlexNetCC(out_channels=gamut.Q, fc_width=16)
    net_cfg = {"_target_": "pretext.nets.AlexNetCC", "in_channels": 1, "fc_width": 16}
    torch.save({"state_dict": {f"net.{k}": v for k, v in colorizer.state_dict().items()}, "global_step": 1,
                "colorization": {"centers": gamut.centers, "prior": torch.full((gamut.Q,), 1 / gamut.Q),
                                 "gamut_source": "srgb", "loss": "full", "temperature": 0.38,
                                 "config": {"model": {"net": net_cfg}}}}, d / "colorizer.ckpt")  # fmt: skip
    Gamut(gamut.centers[:100], None, "other").save(d / "other_gamut.npz")
    # VOC devkits, each broken in one way
    cls_split = {"trainval": [[("cat", 0)], [("dog", 0)]], "test": [[("cat", 0)], [("dog", 0)]]}
    missing = write_devkit(d / "voc_missing", cls_split)
    next((missing / "VOC2007" / "JPEGImages").glob("*.jpg")).unlink()
    bad_xml = write_devkit(d / "voc_bad_xml", cls_split)
    next((bad_xml / "VOC2007" / "Annotations").glob("*.xml")).write_text("<annotation><object>")
    seg = d / "voc_seg" / "VOCdevkit" / "VOC2012"
    for split in ("train", "val"):
        jpeg(seg / "JPEGImages" / f"{split}1.jpg", 40, 48)
        (seg / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        write_png(torch.zeros(1, 30, 48, dtype=torch.uint8), str(seg / "SegmentationClass" / f"{split}1.png"))
        (seg / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (seg / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(f"{split}1\n")
    return {"dir": d, "encoder": encoder, "missing": missing, "bad_xml": bad_xml, "seg": seg.parent}


FAST = ["logger=csv", "trainer.accelerator=cpu", "trainer.devices=1"]
PRETEXT = ["model=alexnet_small", "model.net.fc_width=16", "model.crop=32", "model.batch_size=2", "model.max_steps=2",
           "data.num_workers=0", "color.prior_images=4", "samples=false", *FAST]  # fmt: skip
PROBE = ["schedule=short", "schedule.max_steps=2", "data.num_workers=0", *FAST]
VOC = ["data.num_workers=0", *FAST]
CASES = [  # (id, module, arguments ({in} is the inputs folder), what the message says)
    ("train-missing-folder", "pretext.train", [*PRETEXT, "data=folder", "data.root={in}/nowhere"], "is not a folder"),
    ("train-empty-folder", "pretext.train", [*PRETEXT, "data=folder", "data.root={in}/empty"], "no images under"),
    ("train-unreadable-folder", "pretext.train", [*PRETEXT, "data=folder", "data.root={in}/unreadable"],
     r"(none of the \d+ training images|no training image) could be read"),
    ("train-unwritable-run", "pretext.train", [*PRETEXT, "run_dir={in}/afile/run"], "cannot be written"),
    ("train-init-from-not-a-checkpoint", "pretext.train", [*PRETEXT, "task.init_from={in}/not_ckpt.ckpt"],
     "not a checkpoint this suite can read"),
    ("train-misspelt-key", "pretext.train", ["trainer.max_step=5"], "Did you mean trainer.max_steps"),
    ("stats-missing-folder", "pretext.stats", ["data.root={in}/nowhere"], "not a folder|does not exist|no images"),
    ("stats-unwritable-output", "pretext.stats", ["data.root={in}/images", "output={in}/afile/s.npz"],
     "cannot be written"),
    ("evaluate-not-a-checkpoint", "pretext.evaluate", ["ckpt={in}/not_ckpt.ckpt", "data.root={in}/images"],
     "not a checkpoint this suite can read"),
    ("evaluate-exported-encoder", "pretext.evaluate", ["ckpt={in}/encoder.pt", "data.root={in}/images"],
     "not a colorization checkpoint"),
    ("evaluate-context-encoder", "pretext.evaluate", ["ckpt={in}/context_encoder.ckpt", "data.root={in}/images"],
     "not a colorization checkpoint"),
    ("evaluate-other-gamut", "pretext.evaluate",
     ["ckpt={in}/colorizer.ckpt", "data.root={in}/images", "color.stats={in}/other_gamut.npz"],
     "another gamut than the checkpoint's"),
    ("evaluate-missing-folder", "pretext.evaluate", ["data.root={in}/nowhere"], "nowhere"),
    ("evaluate-empty-folder", "pretext.evaluate", ["data.root={in}/empty"], "no images"),
    ("evaluate-unreadable-folder", "pretext.evaluate", ["data.root={in}/unreadable"], "none of the 2 images"),
    ("colorize-exported-encoder", "pretext.colorize",
     ["ckpt={in}/encoder.pt", "input={in}/images/a.jpg", "output={in}/out.png"], "not a colorization checkpoint"),
    ("colorize-missing-input", "pretext.colorize",
     ["ckpt={in}/colorizer.ckpt", "input={in}/nowhere.jpg", "output={out}/x.png"], "nowhere.jpg"),
    ("export-not-a-checkpoint", "pretext.export", ["ckpt={in}/not_ckpt.ckpt", "out={out}/e.pt"],
     "not a checkpoint this suite can read"),
    ("export-probe-checkpoint", "pretext.export", ["ckpt={in}/probe.ckpt", "out={out}/e.pt"],
     "not one of this suite's pretext tasks"),
    ("export-missing-checkpoint", "pretext.export", ["ckpt={in}/nowhere.ckpt"], "does not exist"),
    ("linear-probe-probe-checkpoint", "downstream.linear_probe", [*PROBE, "ckpt={in}/probe.ckpt"],
     "not one of this suite's pretext tasks"),
    ("linear-probe-missing-checkpoint", "downstream.linear_probe", [*PROBE, "ckpt={in}/nowhere.ckpt"],
     "does not exist"),
    ("linear-probe-missing-folder", "downstream.linear_probe", [*PROBE, "init=gaussian", "data.root={in}/nowhere"],
     "has no train/ folder"),
    ("linear-probe-empty-folder", "downstream.linear_probe", [*PROBE, "init=gaussian", "data.root={in}/empty"],
     "has no train/ folder"),
    ("svm-probe-missing-folder", "downstream.svm_probe",
     ["init=gaussian", "data.kind=folder", "data.root={in}/nowhere", "cache_dir={out}/cache"], "not a folder"),
    ("svm-probe-not-a-checkpoint", "downstream.svm_probe", ["ckpt={in}/not_ckpt.ckpt", "cache_dir={out}/cache"],
     "not a checkpoint this suite can read"),
    ("pascal-cls-missing-image", "downstream.pascal_cls", [*VOC, "init=gaussian", "data.root={missing}"],
     "images of trainval are missing"),
    ("pascal-cls-bad-xml", "downstream.pascal_cls", [*VOC, "init=gaussian", "data.root={bad_xml}"],
     "does not parse as a VOC XML"),
    ("pascal-det-bad-xml", "downstream.pascal_det", [*VOC, "init=gaussian", "data.root={bad_xml}"],
     "does not parse as a VOC XML"),
    ("pascal-seg-mask-size", "downstream.pascal_seg",
     [*VOC, "init=gaussian", "data.root={seg}", "seg_schedule=short", "seg_schedule.max_steps=1"],
     r"is \(30, 48\) \(H, W\) but its image is \(40, 48\)"),
    ("suite-unknown", "benchmarks.suite", ["suite=nonexistent"], "no such option"),
    ("report-missing-store", "benchmarks.report", ["--store", "{in}/nowhere.jsonl"], "no results store"),
]


RUN_FOLDERS = ("pretext.train", "downstream.linear_probe", "downstream.pascal_cls", "downstream.pascal_det",
               "downstream.pascal_seg")  # fmt: skip


def point_log_streams_at_stderr() -> None:
    """In-process runs: loggers that made their stream handlers under an earlier test's capture write to
    this test's stderr instead of a closed stream."""
    for logger in [logging.getLogger(), *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stderr  # (setStream would flush the closed one)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("module", "args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_gets_one_clear_line_and_leaves_nothing(module, args, message, inputs, tmp_path, monkeypatch,
                                                          capfd):  # fmt: skip
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    monkeypatch.chdir(work)  # every default output folder lands here
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    names = {"in": inputs["dir"], "out": work / "out", "missing": inputs["missing"], "bad_xml": inputs["bad_xml"],
             "seg": inputs["seg"]}  # fmt: skip
    argv = [a.format(**names) for a in args]
    if module in RUN_FOLDERS and not any(a.startswith("run_dir") for a in argv):
        argv.append(f"run_dir={work}/run")
    if module == "pretext.evaluate":
        argv.append(f"output={work}/eval")
    if module == "benchmarks.suite":
        argv.append(f"root={work}/suite")
    before_inputs = files_under(inputs["dir"])
    monkeypatch.setattr(sys, "argv", [module, *argv])
    point_log_streams_at_stderr()
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main()
    err = capfd.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert re.search(message, lines[0]), lines[0]
    assert files_under(work) == set(), sorted(files_under(work))  # nothing half-written
    assert files_under(inputs["dir"]) == before_inputs
