"""The results store: replace-not-duplicate, and a half-written last line."""

from dataclasses import replace

import pytest

from downstream.results import Record, make_record, read_records, write_records
from pretext.encoders import EncoderInfo

INFO = EncoderInfo("colorization", "/x.ckpt", "abc", 1, ("conv1",))


def rec(layer: str, value: float) -> Record:
    return make_record(INFO, "linear_probe", layer, {"pool": "avg"}, "imagenette", "top1", value)


def test_rewriting_a_record_replaces_it(tmp_path):
    store = tmp_path / "r.jsonl"
    write_records(store, [rec("conv1", 10), rec("conv2", 20)])
    write_records(store, [rec("conv1", 11)])
    got = {r["layer"]: r["value"] for r in read_records(store)}
    assert got == {"conv1": 11.0, "conv2": 20.0} and len(read_records(store)) == 2
    other_pool = replace(rec("conv1", 5), options={"pool": "resize"})
    write_records(store, [other_pool])
    assert len(read_records(store)) == 3


def test_a_half_written_last_line_is_dropped(tmp_path):
    store = tmp_path / "r.jsonl"
    write_records(store, [rec("conv1", 10)])
    with open(store, "a") as f:
        f.write('{"method": "colorization", "lay')
    assert [r["value"] for r in read_records(store)] == [10.0]
    write_records(store, [rec("conv2", 3)])
    assert sorted(r["layer"] for r in read_records(store)) == ["conv1", "conv2"]


def test_a_record_without_its_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="missing layer"):
        Record.from_dict({k: v for k, v in rec("conv1", 1).to_dict().items() if k != "layer"})


def test_records_name_checkpoints_relative_to_the_repository(tmp_path):
    from pretext.checkpoint_files import REPO, repo_path

    assert repo_path(REPO / "outputs" / "x" / "last.ckpt") == "outputs/x/last.ckpt"
    assert repo_path(REPO.parent / "shared" / "data") == "../shared/data"  # beside the checkout, as configs name it
    assert repo_path(tmp_path / "a.ckpt") == str((tmp_path / "a.ckpt").resolve())  # outside: absolute


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    store = tmp_path / "r.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    torn = tmp_path / f".r.jsonl.{int(dead.stdout)}.tmp"  # a writer killed mid-write left this
    torn.write_text('{"method": "colo')
    live = tmp_path / f".r.jsonl.{os.getppid()}.tmp"  # a writer still at work: left alone
    live.write_text("")
    write_records(store, [rec("conv1", 10)])
    assert not torn.exists() and live.exists()
    assert [r["value"] for r in read_records(store)] == [10.0]
