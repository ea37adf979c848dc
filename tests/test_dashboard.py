"""The dashboards, from a constructed store: seeded colorization and Context Encoders probes (their
intervals), a single-seed Gaussian one (n=1), PASCAL, AuC with its baselines and a sample image; the
W&B report's spec, the HTML page, publishing with wandb faked, and the page in headless Chromium."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from benchmarks import dashboard

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")
SEEDS = (0, 1, 2)


def record(method, digest, evaluation, layer, options, dataset, metric, value, job=None, **details):
    """A store line as the suite writes it (see benchmarks/results/imagenette_cpu/results.jsonl)."""
    return {
        "method": method, "pretext_method": method, "suite_job": job, "checkpoint_digest": digest,
        "checkpoint": f"/runs/{method}-{digest}/checkpoints/last.ckpt", "evaluation": evaluation, "layer": layer,
        "options": options, "dataset": dataset, "metric": metric, "value": float(value),
        "date": "2026-11-27T01:30:36+00:00", "command": "benchmarks/suite.py suite=tiny", **details,
    }  # fmt: skip


def probe(method, digest, layer, value, seed=None, input_="L"):
    options = {"input": input_, "pool": "resize", "schedule": "short", "steps": 9}
    options |= {"seed": seed} if seed is not None else {}
    return record(method, digest, "linear_probe", layer, options, "imagenette", "top1", value)


def build_store(root):
    store = root / "suite" / "results.jsonl"
    records = []
    for seed in SEEDS:  # one pretext run per seed: the checkpoint differs with the seed
        for i, layer in enumerate(LAYERS):
            records.append(probe("colorization", f"c{seed}", layer, 30 + i + 1.5 * seed, seed))
            records.append(probe("context_encoder", f"e{seed}", layer, 20 + i + seed, seed, "RGB"))
    records += [probe("gaussian", "gaussian-seed0", layer, 25.0) for layer in LAYERS]
    for k, method in enumerate(("colorization", "context_encoder", "gaussian")):
        records += [
            record(method, "d0", "pascal_cls", "freeze:conv5", {"freeze": "conv5"}, "voc07", "mAP11", 40 + k,
                   per_class={"car": 50.0, "cat": float("nan")}),
            record(method, "d0", "pascal_det", "freeze:conv2", {"roi": "pool"}, "voc07_det", "mAP11", 30 + k),
            record(method, "d0", "pascal_seg", "fcn32s", {"variant": "fcn32s"}, "voc12_seg", "mIoU", 20 + k),
        ]  # fmt: skip
    baselines = {"Gray": {"auc": 89.0, "auc_rebal": 58.0}, "Random": {"auc": 85.0, "auc_rebal": 55.0}}
    for metric, v in (("auc", 90.1), ("auc_rebal", 60.2)):
        records.append(record("colorization", "c0", "colorization_auc", "-", {"images": 5}, "imagenette", metric, v,
                              job="colorization_auc-colorization#abc123", baselines=baselines))  # fmt: skip
    store.parent.mkdir(parents=True)
    store.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))  # NaN as the store writes it
    (store.parent / "invocations.jsonl").write_text(json.dumps({"suite": "tiny", "store": str(store)}) + "\n")
    sample = store.parent / "jobs" / "colorization_auc-colorization" / "abc123" / "best_worst.png"
    sample.parent.mkdir(parents=True)
    Image.new("RGB", (96, 32), (200, 120, 40)).save(sample)
    return store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    store = build_store(root)
    dashboard.main(["--store", str(store), "--out", str(root / "dash")])
    spec = json.loads((root / "dash" / "report_spec.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    return root / "dash", store, spec


def grids(spec):
    """{heading: [panel configs of the grid that follows it]} from the report's view spec."""
    out, heading = {}, None
    for block in spec["report"]["spec"]["blocks"]:
        if block["type"] == "heading":
            heading = block["children"][0]["text"]
        elif block["type"] == "panel-grid":
            out[heading] = block["metadata"]["panelBankSectionConfig"]["panels"]
    return out


def test_intervals_over_seeds():
    from scipy import stats

    s = dashboard.summarize([30.0, 31.5, 33.0], [0, 1, 2])
    lo, hi = stats.t.interval(0.95, 2, loc=31.5, scale=stats.sem([30.0, 31.5, 33.0]))
    assert (s.mean, s.n) == (31.5, 3) and s.lo == pytest.approx(lo) and s.hi == pytest.approx(hi)
    assert dashboard.summarize([7.0]).text() == "7.0" and dashboard.summarize([7.0]).n_label == "n=1"
    paired = dashboard.difference(s, dashboard.summarize([20.0, 21.0, 22.0], [0, 1, 2]))
    d = stats.t.interval(0.95, 2, loc=10.5, scale=stats.sem([10.0, 10.5, 11.0]))
    assert paired.n_label == "n=3 paired" and (paired.lo, paired.hi) == pytest.approx(d)
    welch = dashboard.difference(s, dashboard.summarize([20.0, 22.0], [7, 8]))
    w = stats.ttest_ind([30.0, 31.5, 33.0], [20.0, 22.0], equal_var=False).confidence_interval(0.95)
    assert welch.n_label == "n=3 vs 2" and (welch.lo, welch.hi) == pytest.approx((w.low, w.high))
    # a side with extra seeds is compared on the seeds both hold, paired
    more = dashboard.difference(dashboard.summarize([30.0, 31.5, 33.0, 40.0, 45.0], [0, 1, 2, 3, 4]),
                                dashboard.summarize([20.0, 21.0, 22.0], [0, 1, 2]))  # fmt: skip
    assert more.n_label == "n=3 paired" and more.mean == pytest.approx(10.5)
    assert (more.lo, more.hi) == pytest.approx(d)
    single = dashboard.difference(s, dashboard.summarize([25.0]))
    assert single.lo is None and single.n_label == "n=3 vs 1" and single.text(signed=True) == "+6.5"


def test_report_spec_has_every_panel_and_names_the_methods(built):
    _, store, spec = built
    titles = dict(dashboard.PANELS)
    assert [p["id"] for p in spec["panels"]] == list(titles)
    charts = grids(spec)
    assert set(charts) == set(titles.values())  # a heading and a panel grid per panel
    kinds = {title: [p["viewType"] for p in panels] for title, panels in charts.items()}
    assert kinds[titles["linear_by_layer"]] == ["Run History Line Plot"] * 2
    assert kinds[titles["colorization_minus"]] == ["Run History Line Plot"]
    assert kinds[titles["pascal"]] == kinds[titles["colorization_auc"]] == ["Bar Chart"]
    assert kinds[titles["samples"]] == ["Media Browser"]
    text = json.dumps(spec["report"])
    assert "colorization" in text and "Context Encoders" in text and "context_encoder" in text
    # every chart reads keys that the dashboard run logs
    logged = {k for row in spec["run"]["history"] for k in row} | set(spec["run"]["summary"])
    used = [m for panels in charts.values() for p in panels for m in p["config"].get("metrics", [])]
    assert used and set(used) <= logged
    assert "diff/colorization minus context_encoder/ci_lo" in logged  # seeded: the interval's bounds too
    assert {"published/Colorization", "published/Context Encoders", "paper_diff/Context Encoders"} <= logged
    assert {"auc/Gray (same images)/auc", "auc/Random (same images)/auc_rebal"} <= logged
    assert spec["data"]["suite"] == "tiny" and spec["data"]["store"] == str(store)


def test_html_page_has_the_panels_intervals_and_provenance(built):
    out, store, _ = built
    page = (out / "index.html").read_text()
    section = page[page.index('<section id="panel-linear_by_layer">') :]
    section = section[: section.index("</section>")]
    assert '<figure class="plot" id="plot-linear_by_layer"><svg' in section and ">conv3<" in section
    for pid, _ in dashboard.PANELS:
        assert f'<section id="panel-{pid}">' in page
    assert "31.5 [27.8, 35.2]" in page  # colorization conv1: three seeds, 95% t-interval
    assert "+10.5 [+9.3, +11.7]" in page and "n=3 paired" in page  # minus Context Encoders, paired by seed
    assert "+6.5" in page and "n=3 vs 1" in page  # minus Gaussian: one seed, no interval
    assert "<td>25.0</td>" in page and "<td>n=1</td>" in page
    assert str(store) in page and "tiny" in page and "git commit" in page
    assert 'src="data:image/jpeg;base64,' in page and (out / "media" / "sample-1.jpg").is_file()
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page and "<link" not in page


def test_publish_logs_the_run_and_saves_the_report(built, monkeypatch):
    import wandb

    wr = dashboard.reports_api()

    out, _, spec = built
    logged, saved = [], []

    class FakeRun:
        id = "run123"
        summary = {}

        def log(self, row):
            logged.append(row)

        def finish(self):
            pass

    monkeypatch.setattr(wandb, "Api", lambda *a, **k: object())
    monkeypatch.setattr(wandb, "init", lambda **kw: saved.append(kw) or FakeRun())
    monkeypatch.setattr(wr.Report, "save", lambda self, **kw: saved.append(self) or self)
    monkeypatch.setattr(wr.Report, "url", property(lambda self: "https://wandb.test/report"))
    assert dashboard.publish(spec["data"], out, "ent", "proj") == "https://wandb.test/report"
    init, report = saved
    assert (init["entity"], init["project"], init["job_type"], init["mode"]) == ("ent", "proj", "dashboard", "online")
    keys = {k for row in logged for k in row} | set(FakeRun.summary)
    grids_ = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids_) == len(dashboard.PANELS)
    for grid in grids_:
        assert [(r.entity, r.project, r.filters) for r in grid.runsets] == [("ent", "proj", "ID = 'run123'")]
        for panel in grid.panels:
            assert set(getattr(panel, "y", None) or getattr(panel, "metrics", None) or panel.media_keys) <= keys
    assert isinstance(logged[-1]["samples"][0], wandb.Image) and "tables/linear_by_layer" in logged[-1]


def test_both_entry_points_run_without_path_edits(tmp_path):
    for args in (["-m", "benchmarks.dashboard"], [dashboard.__file__]):
        p = subprocess.run([sys.executable, *args, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "--store" in p.stdout, p.stderr


def test_page_loads_in_headless_chromium_with_no_console_error(built, tmp_path):
    binary = dashboard.find_chromium()
    if binary is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(dashboard.BROWSERS)}); "
                    "apt-get install chromium (.ci/run does)")  # fmt: skip
    out, _, _ = built
    bad = tmp_path / "bad.html"
    bad.write_text("<script>console.error('boom'); not_defined();</script>")
    with dashboard.Chromium(binary) as browser:
        errors = browser.errors(browser.open(bad.as_uri()))  # the check itself sees errors
        assert any("boom" in e for e in errors) and any("not_defined" in e for e in errors), errors
        tab = browser.open((out / "index.html").as_uri())
        assert browser.errors(tab) == []
        assert all(u.startswith(("file:", "data:")) for u in browser.requests(tab)), browser.requests(tab)
        plot = browser.evaluate(tab, """(() => {
            const svg = document.querySelector('#panel-linear_by_layer figure svg');
            const box = svg.getBoundingClientRect();
            return {width: box.width, height: box.height, lines: svg.querySelectorAll('path').length,
                    text: svg.textContent};
        })()""")  # fmt: skip
        assert plot["width"] > 500 and plot["height"] > 150 and plot["lines"] > 10, plot
        assert "conv1" in plot["text"] and "pool5" in plot["text"] and "colorization" in plot["text"]
        sections = browser.evaluate(tab, "[...document.querySelectorAll('section')].map(s => s.id)")
        assert sections == [f"panel-{pid}" for pid, _ in dashboard.PANELS]
        assert browser.evaluate(tab, "document.querySelector('#panel-samples img').naturalWidth") == 96
        png = browser.screenshot(tab, tmp_path / "page.png")
    with Image.open(png) as im:
        assert im.width == 1400 and im.height > 1500 and len(im.convert("RGB").getcolors(1 << 24)) > 50
