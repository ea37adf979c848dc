"""The report renders every table and the plot from a constructed store."""

from downstream.results import make_record, write_records
from pretext.encoders import EncoderInfo

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def test_report_renders_every_table_and_plot_from_a_store(tmp_path):
    from benchmarks.report import render

    store = tmp_path / "results.jsonl"
    records = []
    for k, method in enumerate(("colorization", "context_encoder", "gaussian", "supervised")):
        info = EncoderInfo(method, f"/{method}.ckpt", f"d{k}", 1, LAYERS)
        for i, layer in enumerate(LAYERS):
            records.append(make_record(info, "linear_probe", layer, {"pool": "resize", "schedule": "short", "steps": 9},
                                       "imagenette", "top1", 10 + i + k))  # fmt: skip
        records.append(make_record(info, "pascal_cls", "freeze:conv5", {}, "voc07", "mAP11", 40 + k))
        records.append(make_record(info, "pascal_cls", "freeze:none", {}, "voc07", "mAP11", 50 + k))
        records.append(make_record(info, "pascal_det", "freeze:conv2", {}, "voc07_det", "mAP11", 30 + k))
        records.append(make_record(info, "pascal_seg", "fcn32s", {}, "voc12_seg", "mIoU", 20 + k))
    color = EncoderInfo("colorization", "/c.ckpt", "d0", 1, LAYERS)
    for metric, v in (("auc", 90.1), ("auc_rebal", 60.2)):
        records.append(make_record(color, "colorization_auc", "-", {"images": 5}, "imagenette", metric, v,
                                   baselines={"Gray": {"auc": 89.0, "auc_rebal": 58.0}}))  # fmt: skip
    write_records(store, records)
    md = render(store, tmp_path / "out").read_text()
    for heading in ("## Linear probes", "## Colorization against Context Encoders", "## PASCAL VOC",
                    "## Colorization quality"):  # fmt: skip
        assert heading in md
    assert "| colorization | imagenette | resize | short (9) | 10.0 | 11.0 | 12.0 | 13.0 | 14.0 | - |" in md
    assert "| context_encoder (here) | -1.0 | -1.0 | -1.0 | -1.0 | -1.0 |" in md  # colorization minus CE
    assert "| supervised | 43.0 | 53.0 | 33.0 | 23.0 |" in md  # cls fc6-8, cls all, det, seg
    assert "| *published* Colorization | 13.1 | 24.7 | 31.0 | 32.6 | 31.8 |" in md
    assert "| colorization | 90.1 | 60.2 | 5 |" in md and "| Gray (same images) | 89.0 | 58.0 | |" in md
    assert (tmp_path / "out" / "linear_by_layer.png").stat().st_size > 10_000
