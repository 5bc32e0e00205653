"""``manifest.json`` of a shard set, as one typed object (the fields are documented in shards/FORMAT.md).

The builder writes it (:meth:`ShardManifest.save`), ``interceptor shards inspect`` checks a build against it,
and the training and evaluation streams find their shards through it (:class:`~interceptor.data.shard_sets.ShardSet`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interceptor.utils import atomic_write_json, read_json

MANIFEST = "manifest.json"
FORMAT = "interceptor-webdataset-shards"
# Builder versions the readers understand: 1 (one face per video) and 2 (several faces, FORMAT.md "Versions").
READABLE_BUILDER_VERSIONS = (1, 2)
# Fields version 2 added; a version 1 manifest has none of them.
_SINCE_VERSION_2 = ("faces", "fake_faces_unchanged", "fakes_without_original", "fakes_without_changed_face",
                    "protocol", "settings", "settings_sha256", "inputs_sha256")


class ManifestError(ValueError):
    """A manifest that cannot be read as one; the message names the file."""


@dataclass(frozen=True)
class ShardFile:
    """One tar shard of a shard set."""

    name: str
    samples: int
    bytes: int
    sha256: str


@dataclass
class ShardManifest:
    """A shard set's manifest; field order is the JSON's (FORMAT.md "Manifest")."""

    format: str
    builder_version: int
    dataset: str
    shard_set: str  # the directory relative to the dataset's output, e.g. "chunk-09/train"
    split: str
    chunk: int | None
    tasks: int  # builder tasks that wrote the shard set
    total_samples: int
    total_videos: int
    samples_by_label: dict[str, int]  # keys "0" (real) and "1" (fake)
    samples_by_method: dict[str, int]
    videos_by_label: dict[str, int]
    videos_by_method: dict[str, int]
    clips_without_face: int
    shards: list[ShardFile]
    skipped: list[dict]  # {"path", "reason"}
    missing: list[str]
    unlisted: list[str]
    warnings: list[dict]  # {"path", "message"}
    # Version 2 on (None in a version 1 manifest):
    faces: int | None = None
    fake_faces_unchanged: int | None = None
    fakes_without_original: int | None = None
    fakes_without_changed_face: int | None = None
    protocol: str | None = None
    settings: dict[str, Any] | None = None  # the resolved shards config section the build used
    settings_sha256: str | None = None
    inputs_sha256: str | None = None
    task: int | None = field(default=None)  # only in a partial manifest of a multi-node build

    @property
    def class_counts(self) -> tuple[int, int]:
        """Samples labelled real, fake."""
        return self.samples_by_label.get("0", 0), self.samples_by_label.get("1", 0)

    @classmethod
    def load(cls, path: str | Path) -> ShardManifest:
        """Read and check ``path``: a readable builder version, every field of that version and no other."""
        path = Path(path)
        data = read_json(path, "shard manifest")
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: not a shard manifest (a JSON object is expected)")
        version = data.get("builder_version")
        if version not in READABLE_BUILDER_VERSIONS:
            raise ManifestError(f"{path}: shards of builder version {version!r}; this reader reads versions "
                                f"{', '.join(map(str, READABLE_BUILDER_VERSIONS))} (shards/FORMAT.md): rebuild them "
                                "with `interceptor shards build`")
        if data.get("format") != FORMAT:
            raise ManifestError(f"{path}: not a shard manifest (format {data.get('format')!r}, expected {FORMAT!r})")
        known = [f.name for f in dataclasses.fields(cls)]
        optional = {"task", *(_SINCE_VERSION_2 if version == 1 else ())}
        missing = [name for name in known if name not in data and name not in optional]
        unknown = sorted(set(data) - set(known))
        if missing or unknown:
            raise ManifestError(f"{path}: not a version {version} shard manifest (shards/FORMAT.md): "
                                + "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                             f"unknown {', '.join(unknown)}" if unknown else "")
                                            if part))
        try:
            shards = [ShardFile(str(s["name"]), int(s["samples"]), int(s["bytes"]), str(s["sha256"]))
                      for s in data["shards"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"{path}: malformed shard list ({err!r}); each shard needs name, samples, bytes, "
                                "sha256") from None
        if (version == 2 and not isinstance(data["settings"], dict)) or not all(
                isinstance(data[name], dict) for name in ("samples_by_label", "samples_by_method", "videos_by_label",
                                                          "videos_by_method")):
            raise ManifestError(f"{path}: malformed manifest: counts and settings must be JSON objects")
        return cls(**{**data, "shards": shards})

    def to_json(self) -> dict:
        """The JSON object of FORMAT.md: a version 1 manifest's absent fields and a final manifest's ``task``
        stay absent."""
        data = dataclasses.asdict(self)
        absent = {"task"} if self.task is None else set()
        if self.builder_version == 1:
            absent |= {name for name in _SINCE_VERSION_2 if data[name] is None}
        return {name: value for name, value in data.items() if name not in absent}

    def save(self, path: str | Path, tmp_suffix: str = ".tmp") -> Path:
        """Write atomically (a temporary file with ``tmp_suffix``, then renamed)."""
        return atomic_write_json(path, self.to_json(), tmp_suffix)
