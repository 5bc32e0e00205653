"""Reading a tar shard's samples, skipping unread the samples a class stream does not want.

Real and fake clips mix within every shard (shards/FORMAT.md), so a class-balanced training stream that read
whole shards for each class would read every shard once per class and throw away the other class's clips: twice
the bytes it trains on with balanced data, more where one class is rare. Shards are local files, so the reader
seeks instead: it reads each file's 512-byte tar header, a sample's ``cls`` (its first file) and, only when the
sample is wanted, the rest of its files.
"""

from __future__ import annotations

import tarfile
from typing import Callable, Iterator


def tar_samples(path: str, keep: Callable[[dict], bool] | None = None) -> Iterator[dict]:
    """The samples of the tar shard at ``path``, grouped as WebDataset groups them: ``__key__`` (a file name up to
    its first dot), ``__url__``, and one entry per file named by the rest of its name (``cls``, ``json``,
    ``f00.png``, ...). With ``keep``, a sample for which ``keep(sample_so_far)`` is False once its ``cls`` is read
    is skipped: its later files are never read."""
    with open(path, "rb", buffering=0) as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        sample, wanted = None, True
        for member in tar:
            if not member.isfile():
                continue
            key, _, suffix = member.name.partition(".")
            if sample is None or key != sample["__key__"]:
                if sample is not None and wanted:
                    yield sample
                sample, wanted = {"__key__": key, "__url__": path}, True
            if not wanted:
                continue
            sample[suffix] = tar.extractfile(member).read()
            if keep is not None and suffix == "cls":
                wanted = keep(sample)
        if sample is not None and wanted:
            yield sample
