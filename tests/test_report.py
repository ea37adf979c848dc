"""The report renders every table and the plot from a constructed store; seeds become intervals and
PASCAL scores on a handful of images are labelled as pipeline checks in the table."""

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
    assert "| colorization | imagenette | resize | short (9) | 10.0 | 11.0 | 12.0 | 13.0 | 14.0 | - | n=1 |" in md
    assert "| context_encoder (here) | -1.0 | -1.0 | -1.0 | -1.0 | -1.0 | n=1 |" in md  # colorization minus CE
    assert "| supervised | - | 43.0 | 53.0 | 33.0 | 23.0 | n=1 |" in md  # cls fc6-8, cls all, det, seg
    assert "| *published* Colorization | 13.1 | 24.7 | 31.0 | 32.6 | 31.8 |" in md
    assert "| colorization | 90.1 | 60.2 | 5 |" in md and "| Gray (same images) | 89.0 | 58.0 | |" in md
    assert (tmp_path / "out" / "linear_by_layer.png").stat().st_size > 10_000


def test_seeds_give_mean_and_t_interval_and_differences_with_their_own(tmp_path):
    from scipy import stats

    from benchmarks.report import render

    store = tmp_path / "results.jsonl"
    values = {"colorization": (30.0, 31.5, 33.0), "gaussian": (20.0, 21.0, 22.0), "context_encoder": (25.0,)}
    records = []
    for method, vals in values.items():
        for seed, v in enumerate(vals):
            info = EncoderInfo(method, f"/{method}-{seed}.ckpt", f"{method}{seed}", 1, LAYERS)
            options = {"pool": "resize", "schedule": "short", "steps": 9, "seed": seed}
            records += [make_record(info, "linear_probe", x, options, "imagenette", "top1", v + i)
                        for i, x in enumerate(LAYERS)]  # fmt: skip
    write_records(store, records)
    md = render(store, tmp_path / "out").read_text()
    h = stats.t.ppf(0.975, 2) * stats.tstd([30.0, 31.5, 33.0]) / 3**0.5  # 3.73
    assert f"| colorization | imagenette | resize | short (9) | 31.5 ± {h:.1f} | 32.5 ± {h:.1f} |" in md
    assert "| context_encoder | imagenette | resize | short (9) | 25.0 | 26.0 | 27.0 | 28.0 | 29.0 | - | n=1 |" in md
    assert "| - | n=3 |" in md  # the colorization and gaussian rows: 3 seeds
    d = stats.t.ppf(0.975, 2) * stats.tstd([10.0, 10.5, 11.0]) / 3**0.5  # paired over seeds 0, 1, 2: 1.24
    assert f"| gaussian (here) | +10.5 ± {d:.1f} | +10.5 ± {d:.1f} | +10.5 ± {d:.1f} | +10.5 ± {d:.1f} |" in md
    assert "+10.5 ± 1.2 | n=3 paired |" in md
    assert "| context_encoder (here) | +6.5 | +6.5 | +6.5 | +6.5 | +6.5 | n=3 vs 1 |" in md  # no interval with one


def test_pascal_rows_on_a_handful_of_images_are_labelled_pipeline_checks(tmp_path):
    from benchmarks.report import render

    store = tmp_path / "results.jsonl"
    info = EncoderInfo("colorization", "/c.ckpt", "d0", 1, LAYERS)
    records = [  # voc_mini-sized: 5 VOC07 test images, 3 VOC12 val images; then the full splits
        make_record(info, "pascal_cls", "freeze:conv5", {"images": 5, "schedule": "short"}, "voc07", "mAP11", 64.1),
        make_record(info, "pascal_det", "freeze:conv2", {"images": 5, "schedule": "short"}, "voc07_det", "mAP11", 7.0),
        make_record(info, "pascal_seg", "fcn32s", {"images": 3, "schedule": "short"}, "voc12_seg", "mIoU", 12.5),
        make_record(info, "pascal_cls", "freeze:conv5", {"images": 4952}, "voc07", "mAP11", 61.0),
        make_record(info, "pascal_seg", "fcn32s", {"images": 1449}, "voc12_seg", "mIoU", 35.0),
        make_record(info, "pascal_cls", "freeze:none", {"schedule": "short"}, "voc07", "mAP11", 70.0),  # older record
    ]  # fmt: skip
    write_records(store, records)
    md = render(store, tmp_path / "out").read_text()
    assert "| colorization | pipeline check (5 images) | 64.1 | - | 7.0 | - | n=1 |" in md
    assert "| colorization | pipeline check (3 images) | - | - | - | 12.5 | n=1 |" in md
    assert "| colorization | 1449 images / 4952 images | 61.0 | - | - | 35.0 | n=1 |" in md
    assert "| colorization | pipeline check (short schedule; test images not recorded) | - | 70.0 | - | - | n=1 |" in md


def test_the_report_states_each_ordering_as_reproduced_reversed_or_not_settled(tmp_path):
    from benchmarks.report import render

    store = tmp_path / "results.jsonl"
    values = {  # per seed; conv3 clearly ahead, conv4 overlapping, conv5 clearly behind Gaussian
        "colorization": {"conv3": (40.0, 41.0, 42.0), "conv4": (30.0, 35.0, 28.0), "conv5": (20.0, 20.5, 21.0)},
        "gaussian": {"conv3": (30.0, 30.5, 31.0), "conv4": (31.0, 30.0, 33.0), "conv5": (25.0, 25.0, 25.5)},
        "context_encoder": {"conv3": (35.0,), "conv4": (20.0,), "conv5": (10.0,)},
    }
    records = []
    for method, layers in values.items():
        for layer, vals in layers.items():
            for seed, v in enumerate(vals):
                info = EncoderInfo(method, f"/{method}.ckpt", f"{method}{seed}", 1, LAYERS)
                options = {"pool": "resize", "schedule": "cached", "steps": 9, "seed": seed}
                records.append(make_record(info, "linear_probe", layer, options, "imagenette", "top1", v))
    color = EncoderInfo("colorization", "/c.ckpt", "d0", 1, LAYERS)
    records.append(make_record(color, "colorization_auc", "-", {"images": 1000}, "imagenette", "auc_rebal", 62.0,
                               baselines={"Gray": {"auc": 89.0, "auc_rebal": 57.5}}))  # fmt: skip
    write_records(store, records)
    md = render(store, tmp_path / "out").read_text()
    assert "## The paper's orderings: reproduced here?" in md
    assert "| colorization > Gaussian init | imagenette, resize, cached | conv3 | yes (+10.5 ± " in md
    assert "| colorization > Gaussian init | imagenette, resize, cached | conv4 | not settled (-0.3 ± " in md
    assert "| colorization > Gaussian init | imagenette, resize, cached | conv5 | no: reversed (-4.7 ± " in md
    assert "| colorization > Context Encoders | imagenette, resize, cached | conv5 | not settled: n=3 vs 1, no " in md
    assert "| rebalanced AuC >= Gray + 3 | imagenette, 1000 photos | - | yes (62.0 vs Gray 57.5: +4.5;" in md


def test_the_learning_curve_puts_each_checkpoint_against_the_crops_it_saw(tmp_path):
    from benchmarks.report import render

    store = tmp_path / "results.jsonl"
    records = []
    options = {"pool": "resize", "schedule": "cached", "steps": 9}
    runs = {  # (method label, role, crops seen): top-1 at conv3..conv5 over seeds 0, 1, 2
        ("gaussian", "gaussian", None): (30.0, 30.5, 31.0),
        ("colorization@25", "colorization", 1000): (28.0, 28.5, 29.0),
        ("colorization", "colorization", 4000): (35.0, 35.5, 36.5),
        ("context_encoder@25", "context_encoder", 1000): (25.0, 25.0, 25.5),
        ("context_encoder", "context_encoder", 4000): (27.0, 27.5, 28.0),
    }
    for (label, role, crops), vals in runs.items():
        info = EncoderInfo(role, f"/{label}.ckpt", label, 3 if role == "context_encoder" else 1, LAYERS)  # RGB / L
        extra = {} if crops is None else {"pretext": {"crops_seen": crops, "step": crops // 32}}
        for seed, v in enumerate(vals):
            opts = options | {"seed": seed, "input": info.input}  # as real records: the input differs by method
            records += [make_record(info, "linear_probe", x, opts, "imagenette", "top1", v, label=label, **extra)
                        for x in ("conv3", "conv4", "conv5")]  # fmt: skip
    write_records(store, records)
    md = render(store, tmp_path / "out").read_text()
    assert "## Learning curve: colorization minus the baselines against crops seen" in md
    rows = [x for x in md.splitlines() if x.startswith("| 1,000 |") or x.startswith("| 4,000 |")]
    assert rows[0].startswith("| 1,000 | -2.0 ± ") and "| +3.3 ± " in rows[0]  # behind Gaussian, ahead of CE
    assert rows[1].startswith("| 4,000 | +5.2 ± ") and "| +8.2 ± " in rows[1]
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 10_000
