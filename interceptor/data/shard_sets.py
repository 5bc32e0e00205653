"""Shard sets: the directories (each with its ``manifest.json``) a config names by glob, as the streams read them."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from interceptor.shards.manifest import MANIFEST, ShardManifest


class DataError(ValueError):
    """Shard sets that cannot be used as configured; the message names the path or config key."""


@dataclass(frozen=True)
class ShardSet:
    """A directory holding ``manifest.json`` and its tar shards."""

    name: str  # relative to the shards root, e.g. "ffpp/train"
    urls: tuple[str, ...]  # its non-empty shards
    samples: int
    class_counts: tuple[int, int]  # real, fake samples
    margin: float  # context margin the crops were cut with (shards.margin)
    protocol: str | None  # the FF++ protocol it was built with (manifest ``protocol``), None for other datasets

    @classmethod
    def load(cls, root: Path, directory: Path) -> ShardSet:
        """The shard set in ``directory`` (under the shards ``root``); every shard its manifest lists must exist."""
        path = directory / MANIFEST
        try:
            manifest = ShardManifest.load(path)
        except ValueError as err:  # unreadable, another format or version, missing fields
            raise DataError(str(err)) from None
        if manifest.settings is None or "margin" not in manifest.settings:
            raise DataError(f"{path}: no settings.margin (the crop margin the shards were cut with)")
        shards = [(directory / s.name, s.samples) for s in manifest.shards]
        missing = [str(p) for p, _ in shards if not p.is_file()]
        if missing:
            raise DataError(f"{path}: shards listed but missing: {', '.join(missing[:3])}")
        return cls(str(directory.relative_to(root)), tuple(str(p) for p, n in shards if n > 0),
                   sum(n for _, n in shards), manifest.class_counts, float(manifest.settings["margin"]),
                   manifest.protocol)


def resolve_shard_sets(root: str | Path, patterns: list[str], what: str) -> list[ShardSet]:
    """Shard sets matching ``patterns`` (globs relative to ``root``); none found is an error naming them."""
    root = Path(root)
    sets = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in glob.glob(str(root / pattern)) if (Path(p) / MANIFEST).is_file())
        if not matches:
            raise DataError(f"{what}: no shard set matches {pattern!r} under {root} (each needs a {MANIFEST}; "
                            "build them with `interceptor shards build`)")
        sets.extend(ShardSet.load(root, m) for m in matches)
    return sets
