"""The GPU payload's Imagenette subset: an even subset per class, near-greyscale photos left out."""

from PIL import Image

from benchmarks.gpu_subset import copy_subset


def test_an_even_subset_per_class_without_the_near_greyscale_photos(tmp_path):
    src = tmp_path / "src"
    for split, n in (("train", 6), ("val", 3)):
        for c in ("a", "b"):
            (src / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / split / c / f"{c}_{i}.JPEG")
    (src / "near_grayscale.txt").write_text("train/a/a_0.JPEG\nval/b/b_2.JPEG\n")
    counts = copy_subset(src, tmp_path / "dst", {"train": 3, "val": 2})
    assert counts == {"train": 6, "val": 4}
    got = sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*.JPEG"))
    assert "train/a/a_0.JPEG" not in got and "val/b/b_2.JPEG" not in got
    assert [p for p in got if p.startswith("train/a/")] == ["train/a/a_1.JPEG", "train/a/a_3.JPEG", "train/a/a_5.JPEG"]
