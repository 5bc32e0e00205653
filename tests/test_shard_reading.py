"""The shard reader: WebDataset's samples, and a class stream's unwanted samples skipped unread."""

from __future__ import annotations

from pathlib import Path

import webdataset as wds

from interceptor.data.shard_reading import tar_samples
from test_frame_samples import write_shard_set


def bytes_read() -> int:
    return int(next(line.split()[1] for line in Path("/proc/self/io").read_text().splitlines()
                    if line.startswith("rchar:")))


def test_the_reader_groups_a_shard_as_webdataset_does(tmp_path):
    write_shard_set(tmp_path / "set")
    shard = str(tmp_path / "set" / "shard-000-00000.tar")
    ours = list(tar_samples(shard))
    theirs = [{k: v for k, v in s.items() if k != "__local_path__"} for s in wds.tarfile_samples([{"url": shard}])]
    assert len(ours) == 12 and ours == theirs


def test_a_class_stream_reads_the_clips_of_its_class_and_the_headers_of_the_others(tmp_path):
    write_shard_set(tmp_path / "set")
    shard = str(tmp_path / "set" / "shard-000-00000.tar")
    start = bytes_read()
    everything = list(tar_samples(shard))
    whole = bytes_read() - start
    start = bytes_read()
    fakes = list(tar_samples(shard, keep=lambda sample: sample["cls"] == b"1"))
    part = bytes_read() - start
    assert fakes == [s for s in everything if s["cls"] == b"1"] and len(fakes) == 6
    payload = sum(len(v) for s in fakes for k, v in s.items() if not k.startswith("__"))
    skipped = sum(len(v) for s in everything if s["cls"] == b"0" for k, v in s.items() if not k.startswith("__"))
    assert part < whole - skipped + 512 * 2 * 6  # the real clips' files went unread, bar their cls and headers
    assert part >= payload
