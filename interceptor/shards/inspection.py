"""``interceptor shards inspect``: what was built, and whether it is what its manifest says.

For every shard set under a directory (every directory holding a ``manifest.json``): counts per label, method
and split, skipped videos with their reasons, missing and unlisted videos; then checks that every shard exists
with its size and sha256, that its samples are exactly the documented files (shards/FORMAT.md) with unique
well-formed keys, that labels agree, and that no temporary or unlisted file lies beside them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from interceptor import DATASETS
from interceptor.shards.manifest import MANIFEST, ShardManifest
from interceptor.shards.samples import SAMPLE_FIELDS, sample_key

# dataset-split-method-videoid[-faceF]-clipNN: builder version 1 has no face part
KEY_PATTERN = re.compile(rf"({'|'.join(DATASETS)})-[A-Za-z0-9_]+-[a-z0-9_]+-[A-Za-z0-9_]+(-face\d+)?-clip\d{{2,}}")


@dataclass
class ShardSetReport:
    directory: Path
    manifest: ShardManifest | None  # None when it cannot be read (the problem says why)
    problems: list[str] = field(default_factory=list)


class _HashingReader:
    """A read-only file wrapper that hashes what passes through it."""

    def __init__(self, fh):
        self.fh = fh
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        return data


def find_shard_sets(out: str | Path) -> list[Path]:
    return sorted(p.parent for p in Path(out).rglob(MANIFEST))


def _check_sample(key: str, files: dict[str, bytes], problems: list[str], where: str) -> tuple[int, str] | None:
    """Check one sample's files against the format; return (label, method) when it is readable."""
    if not KEY_PATTERN.fullmatch(key):
        problems.append(f"{where}: malformed key {key!r}")
    try:
        meta = json.loads(files["json"])
        label = int(files["cls"].decode("ascii"))
    except (KeyError, ValueError, UnicodeDecodeError) as err:
        problems.append(f"{where}: {key}: unreadable cls/json ({err})")
        return None
    if set(meta) != set(SAMPLE_FIELDS):
        problems.append(f"{where}: {key}: json fields differ from the format: "
                        f"{sorted(set(meta) ^ set(SAMPLE_FIELDS))}")
        return None
    expected = {"cls", "json"} | {f"f{t:02d}.{meta['image_format']}" for t in range(meta["num_frames"])}
    if meta["has_audio"]:
        expected.add("audio.npy")
    if set(files) != expected:
        problems.append(f"{where}: {key}: files {sorted(files)} differ from the format's {sorted(expected)}")
    if label != meta["label"] or label not in (0, 1):
        problems.append(f"{where}: {key}: cls {label} disagrees with json label {meta['label']}")
    return label, meta["method"]


def check_shard_set(directory: Path, checksums: bool = True) -> ShardSetReport:
    """Validate one shard set against its manifest (``checksums=False``: sizes only, no reading)."""
    try:
        manifest = ShardManifest.load(directory / MANIFEST)
    except ValueError as err:  # unreadable, another format or version, missing fields
        return ShardSetReport(directory, None, [str(err)])
    report = ShardSetReport(directory, manifest)
    problems = report.problems
    listed = {s.name for s in manifest.shards}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".tmp") or (path.suffix == ".tar" and path.name not in listed):
            problems.append(f"{path}: not in the manifest (left by an interrupted build?)")
    if (directory / ".work").exists():
        problems.append(f"{directory / '.work'}: work files left (a build is running or was interrupted)")
    keys: set[str] = set()
    labels: Counter = Counter()
    methods: Counter = Counter()
    for shard in manifest.shards:
        path = directory / shard.name
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest but missing")
            continue
        if path.stat().st_size != shard.bytes:
            problems.append(f"{path}: {path.stat().st_size} bytes, the manifest says {shard.bytes}")
        if not checksums:
            continue
        samples = 0
        with open(path, "rb") as fh:
            reader = _HashingReader(fh)
            files: dict[str, dict[str, bytes]] = {}
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for info in tar:
                    key = sample_key(info.name)
                    files.setdefault(key, {})[info.name[len(key) + 1:]] = tar.extractfile(info).read()
            reader.read()  # the end-of-archive padding counts in the checksum
        for key, sample_files in files.items():
            samples += 1
            if key in keys:
                problems.append(f"{path}: duplicate key {key}")
            keys.add(key)
            checked = _check_sample(key, sample_files, problems, str(path))
            if checked:
                labels[str(checked[0])] += 1
                methods[checked[1]] += 1
        if reader.digest.hexdigest() != shard.sha256:
            problems.append(f"{path}: sha256 differs from the manifest")
        if samples != shard.samples:
            problems.append(f"{path}: {samples} samples, the manifest says {shard.samples}")
    if checksums:
        if sum(labels.values()) != manifest.total_samples or dict(labels) != manifest.samples_by_label:
            problems.append(f"{directory}: samples per label {dict(labels)} differ from the manifest's "
                            f"{manifest.samples_by_label}")
        if dict(methods) != manifest.samples_by_method:
            problems.append(f"{directory}: samples per method {dict(methods)} differ from the manifest's "
                            f"{manifest.samples_by_method}")
    return report


def _summary(report: ShardSetReport, root: Path) -> list[str]:
    m = report.manifest
    name = report.directory.relative_to(root).as_posix() if report.directory != root else "."
    if m is None:
        return [f"{name}: unreadable manifest", *[f"  PROBLEM: {p}" for p in report.problems]]
    size = sum(s.bytes for s in m.shards)
    lines = [f"{name}: {m.dataset} {m.shard_set}: {m.total_samples} samples from {m.total_videos} "
             f"videos in {len(m.shards)} shards ({size / 1e6:.1f} MB)",
             f"  samples by label: {m.samples_by_label}   videos by label: {m.videos_by_label}",
             f"  samples by method: {m.samples_by_method}"]
    if m.protocol:
        lines.append(f"  FF++ protocol: {m.protocol}")
    if m.faces is not None and (m.faces != m.total_videos or m.fake_faces_unchanged):
        lines.append(f"  faces: {m.faces}; faces of fakes unchanged against the original: "
                     f"{m.fake_faces_unchanged} ({m.settings['unchanged_faces']})")
    for count, what in ((m.fakes_without_original, "fakes without their original (every face kept as fake)"),
                        (m.fakes_without_changed_face, "fakes with no changed face (every face kept as fake)")):
        if count:
            lines.append(f"  {what}: {count}")
    if m.clips_without_face:
        lines.append(f"  clips dropped for lack of a face: {m.clips_without_face}")
    reasons = Counter(s["reason"].split(":")[0] for s in m.skipped)
    lines.append(f"  skipped: {len(m.skipped)}" + (f" {dict(reasons)}" if reasons else ""))
    lines += [f"    {s['path']}: {s['reason']}" for s in m.skipped]
    for key, paths in (("missing", m.missing), ("unlisted", m.unlisted)):
        if paths:
            lines.append(f"  {key}: {len(paths)}: {', '.join(paths)}")
    lines += [f"  warning: {w['path']}: {w['message']}" for w in m.warnings]
    lines += [f"  shard {s.name}: {s.samples} samples, {s.bytes} bytes, sha256 {s.sha256}" for s in m.shards]
    lines += [f"  PROBLEM: {p}" for p in report.problems]
    return lines


def inspect_shards(out: str | Path, checksums: bool = True) -> tuple[str, list[str]]:
    """A printable summary of every shard set under ``out``, and the problems found."""
    out = Path(out)
    directories = find_shard_sets(out)
    if not directories:
        return "", [f"{out}: no {MANIFEST} found"]
    reports = [check_shard_set(d, checksums) for d in directories]
    lines = []
    for report in reports:
        lines += _summary(report, out)
    readable = [r.manifest for r in reports if r.manifest is not None]
    totals = Counter()
    for manifest in readable:
        totals[f"{manifest.dataset} {manifest.split}"] += manifest.total_samples
    lines.append("samples per dataset and split: " + ", ".join(f"{k}: {v}" for k, v in sorted(totals.items())))
    problems = [p for r in reports for p in r.problems]
    for dataset in sorted({m.dataset for m in readable}):
        if not any(v for k, v in totals.items() if k.split(" ")[0] == dataset):
            problems.append(f"{out}: every {dataset} shard set is empty (no sample was built)")
    lines.append(f"{len(reports)} shard sets, {len(problems)} problems")
    return "\n".join(lines), problems
