"""The shard builder: raw dataset layout in, one directory of tar shards and a manifest per shard set out.

Two stages, so that the shards depend only on the videos and the settings (never on scheduling):

1. **Videos**, in parallel (``workers`` processes, one video per task): each video's samples are encoded and
   written, atomically, to a per-video file under ``<shard set>/.work/task-TTT/``. Originals (and fakes whose
   original is not in the shard set) go first; then the fakes, which reuse their original's face track. A
   video that gives no clip is recorded with its reason. A rerun finds these files and skips the work.
2. **Shards**, in shuffled but deterministic video order (by the SHA-256 of the video's path, so real and fake
   videos, and the methods, mix within every shard): the per-video samples are packed into size-bounded tars,
   each written under a temporary name and renamed when complete; then the manifest; then the work files are
   removed.

Multi-node (``task``): the shard sets' videos are split deterministically between ``count`` tasks, keeping each
original with its fakes. Each task writes ``shard-TTT-NNNNN.tar`` and a partial manifest; the last task to
finish (or ``merge_manifests``) writes ``manifest.json``. Every temporary file carries its task's tag, so a task
only ever cleans up its own leftovers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import shutil
import tarfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import torch
from tqdm import tqdm

from interceptor.config import ConfigError
from interceptor.schema import ShardsConfig
from interceptor.shards.changes import face_changes, label_faces, work_file_crops
from interceptor.shards.extract import extract_clips
from interceptor.shards.faces import check_detector
from interceptor.shards.layouts import ShardSetListing, VideoEntry, clips_for_split, read_layout
from interceptor.shards.manifest import FORMAT, MANIFEST, ShardFile, ShardManifest
from interceptor.shards.samples import (BUILDER_VERSION, add_member, atomic_tar, clip_members, group_samples,
                                        read_members, video_key, write_shards)
from interceptor.shards.settings import check_config, content_settings, settings_digest
from interceptor.shards.track import FaceTrack
from interceptor.shards.video import VideoError
from interceptor.utils import atomic_write_json, read_json

log = logging.getLogger(__name__)

_RECORD = "video.json"  # first member of a per-video work file


class BuildError(RuntimeError):
    """The build cannot go on (an existing output was built with other settings, parts disagree)."""


@dataclass(frozen=True)
class Task:
    """This process's share of a multi-node build: task ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"task index {self.index} is not in 0..{self.count - 1}")

    @property
    def tmp_suffix(self) -> str:
        return f".task{self.index:03d}.tmp"


# ----------------------------------------------------------------------------------------------- one shard set


def input_identity(root: Path, entry: VideoEntry) -> dict:
    """What a video's samples depend on besides the settings: the file (size, modification time) and its label,
    and for a fake the same of the original whose track it reuses. A change means the video is built again."""
    def of(path: str) -> list[int]:
        stat = (root / path).stat()
        return [stat.st_size, stat.st_mtime_ns]

    return {"file": of(entry.path), "label": entry.label, "original": of(entry.original) if entry.original else None}


class ShardSetBuild:
    """The output directory of one shard set, as seen by one task."""

    def __init__(self, out: Path, root: Path, listing: ShardSetListing, task: Task, settings: dict):
        self.listing = listing
        self.task = task
        self.settings = settings
        self.digest = settings_digest(settings)
        self.directory = out / listing.name
        self.work = self.directory / ".work" / f"task-{task.index:03d}"
        self.manifest = self.directory / MANIFEST
        self.part = self.directory / f"manifest-part-{task.index:03d}-of-{task.count:03d}.json"
        self.videos = self._share(listing.videos, task)
        self.by_path = {v.path: v for v in self.videos}
        self.inputs = {v.path: input_identity(root, v) for v in listing.videos}  # every task's: one digest
        self.inputs_digest = settings_digest(self.inputs)

    @staticmethod
    def _share(videos: list[VideoEntry], task: Task) -> list[VideoEntry]:
        """This task's videos: whole groups (an original and its fakes), dealt round-robin in sorted order."""
        groups = sorted({v.original or v.path for v in videos})
        mine = {g for i, g in enumerate(groups) if i % task.count == task.index}
        return [v for v in videos if (v.original or v.path) in mine]

    def work_file(self, entry: VideoEntry) -> Path:
        return self.work / f"{video_key(entry)}.tar"

    def _finished(self, path: Path) -> bool:
        if not path.is_file():
            return False
        manifest = ShardManifest.load(path)
        if manifest.settings_sha256 != self.digest:
            raise BuildError(f"{path}: this shard set was built with other settings; remove {self.directory} or "
                             "build into another --out")
        if manifest.inputs_sha256 != self.inputs_digest:
            log.info("%s: videos replaced, relabelled, added or removed since it was built: rebuilding", path)
            return False
        return True

    def is_cached(self, entry: VideoEntry) -> bool:
        """Whether the video's work file is there and was made from the same input (else it is removed)."""
        path = self.work_file(entry)
        if not path.is_file():
            return False
        if read_record(path).get("input") == self.inputs[entry.path]:
            return True
        path.unlink()
        return False

    def is_done(self) -> bool:
        """Whether the whole shard set, or this task's part of it, is already built with these settings."""
        return self._finished(self.manifest) or (self.task.count > 1 and self._finished(self.part))

    def prepare(self) -> None:
        """Remove this task's temporary leftovers; drop work files made with other settings."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f".*{self.task.tmp_suffix}"):
            stale.unlink()
        stamp = self.work / "settings.json"
        if self.work.is_dir() and (not stamp.is_file() or read_json(stamp).get("sha256") != self.digest):
            log.warning("%s: discarding work files made with other settings", self.work)
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        for stale in self.work.glob(f".*{self.task.tmp_suffix}"):
            stale.unlink()
        if not stamp.is_file():
            atomic_write_json(stamp, {"sha256": self.digest}, self.task.tmp_suffix)

    def records(self) -> list[dict]:
        return [read_record(self.work_file(v)) for v in self.videos]

    def pack(self) -> Path:
        """Write this task's shards and its manifest (part), then drop the work files."""
        records = self.records()
        order = sorted(self.videos, key=lambda v: hashlib.sha256(v.path.encode()).hexdigest())
        samples = (sample for v in order for sample in _work_samples(self.work_file(v)))
        task = self.task.index
        shards = write_shards(samples, self.directory, lambda n: f"shard-{task:03d}-{n:05d}.tar",
                              self.settings["shard_max_samples"], self.settings["shard_max_bytes"],
                              self.task.tmp_suffix)
        written = {s["name"] for s in shards}
        for old in self.directory.glob(f"shard-{task:03d}-*.tar"):
            if old.name not in written:
                old.unlink()
        target = self.manifest if self.task.count == 1 else self.part
        self._manifest(records, shards).save(target, self.task.tmp_suffix)
        shutil.rmtree(self.work)
        try:
            self.work.parent.rmdir()
        except OSError:
            pass  # other tasks' work is still there
        if self.task.count > 1:
            merge_manifests(self.directory, self.task.count, self.task.tmp_suffix)
        return target

    def _manifest(self, records: list[dict], shards: list[dict]) -> ShardManifest:
        listing = self.listing
        reports = self.task.index == 0  # the listing's own reports go in one part only
        built = [r for r in records if r["status"] == "ok"]
        return ShardManifest(
            format=FORMAT, builder_version=BUILDER_VERSION, dataset=listing.dataset,
            shard_set=listing.name, split=listing.split, chunk=listing.chunk,
            tasks=self.task.count,
            total_samples=sum(r["samples"] for r in built), total_videos=len(built),
            samples_by_label=dict(sorted(sum((Counter(r["samples_by_label"]) for r in built), Counter()).items())),
            samples_by_method=_count(built, "method", "samples"),
            videos_by_label=_count(built, "label"), videos_by_method=_count(built, "method"),
            clips_without_face=sum(r["clips_without_face"] for r in built),
            shards=[ShardFile(**shard) for shard in shards],
            skipped=sorted(([*listing.skipped] if reports else []) +
                           [{"path": r["path"], "reason": r["reason"]} for r in records if r["status"] != "ok"],
                           key=lambda s: s["path"]),
            missing=listing.missing if reports else [],
            unlisted=listing.unlisted if reports else [],
            warnings=[{"path": r["path"], "message": w} for r in built for w in r["warnings"]],
            faces=sum(len(r["tracks"]) for r in built),
            fake_faces_unchanged=sum(r["unchanged_faces"] for r in built),
            fakes_without_original=sum(r["face_decision"] == "no_original" for r in built),
            fakes_without_changed_face=sum(r["face_decision"] == "no_changed_face" for r in built),
            protocol=listing.protocol,
            settings=self.settings, settings_sha256=self.digest, inputs_sha256=self.inputs_digest,
            task=self.task.index if self.task.count > 1 else None,
        )


def _count(records: list[dict], field: str, weight: str | None = None) -> dict[str, int]:
    counts: Counter = Counter()
    for r in records:
        counts[str(r[field])] += r[weight] if weight else 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------------------------- work files


def read_record(path: Path) -> dict:
    """The per-video record at the head of a work file."""
    with tarfile.open(path, "r") as tar:
        head = tar.next()
        if head is None or head.name != _RECORD:
            raise BuildError(f"{path}: not a shard builder work file")
        return json.loads(tar.extractfile(head).read())


def _work_samples(path: Path):
    members = read_members(path)
    next(members)  # the record
    yield from group_samples(members)


@dataclass(frozen=True)
class VideoJob:
    entry: VideoEntry
    root: str
    work_file: str
    original_work_file: str | None
    num_clips: int
    cfg: ShardsConfig
    tmp_suffix: str
    input: dict  # input_identity of the video, stored in its record


def process_video(job: VideoJob) -> dict:
    """Extract, label (face by face), encode and store one video's samples (or why it has none); returns its
    record."""
    entry, cfg = job.entry, job.cfg
    record = {"path": entry.path, "label": entry.label, "method": entry.method, "input": job.input}
    tracks = original_crops = None
    if job.original_work_file:  # the original was processed first; without a face it has no track to lend
        original = read_record(Path(job.original_work_file))
        if original["status"] == "ok":
            tracks = [FaceTrack.from_json(t) for t in original["tracks"]]
            original_crops = work_file_crops(Path(job.original_work_file))
    members = []
    try:
        video = extract_clips(Path(job.root) / entry.path, cfg, tracks, num_clips=job.num_clips,
                              dataset_path=entry.path)
        faces = sorted({clip.face for clip in video.clips})  # the faces with clips
        compared = original_crops is not None and video.detector == "original"
        changes = face_changes(video, original_crops, cfg.margin) if compared else None
        decided = label_faces(entry.label, faces, changes, cfg)
        kept = [clip for clip in video.clips if clip.face in decided.labels]
        for clip in kept:
            members += clip_members(entry, video, clip, cfg, decided.labels[clip.face], decided.changes[clip.face])
        record.update(status="ok", samples=len(kept),
                      samples_by_label=dict(Counter(str(decided.labels[c.face]) for c in kept)),
                      clips_without_face=video.clips_without_face, warnings=video.warnings,
                      tracks=[t.to_json() for t in video.tracks], face_decision=decided.decision,
                      face_changes=decided.changes, unchanged_faces=decided.unchanged)
    except VideoError as err:
        record.update(status="skipped", reason=str(err))
    except ConfigError:
        raise
    except Exception as err:  # one bad video must not stop a build of thousands: it is reported, not dropped
        log.exception("%s: unexpected error", entry.path)
        record.update(status="skipped", reason=f"unexpected error: {type(err).__name__}: {err}")
    with atomic_tar(job.work_file, job.tmp_suffix) as tar:
        add_member(tar, _RECORD, json.dumps(record).encode("utf-8"))
        for name, data in members:
            add_member(tar, name, data)
    return {"path": entry.path, "status": record["status"], "reason": record.get("reason")}


def init_worker() -> None:
    """One video per process: no nested thread pools (OpenCV's, and torch's for the mtcnn detector)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _run_jobs(phases: list[list[VideoJob]], workers: int, progress: tqdm) -> None:
    """Run the phases in order (fakes after the originals whose tracks they reuse), jobs in parallel."""
    skipped = 0

    def done(record: dict) -> None:
        nonlocal skipped
        if record["status"] != "ok":
            skipped += 1
            log.warning("skipped %s: %s", record["path"], record["reason"])
        progress.update()
        progress.set_postfix(skipped=skipped)

    if workers == 1:
        for jobs in phases:
            for job in jobs:
                done(process_video(job))
        return
    # A worker killed by the system (out of memory) breaks the pool with an error instead of hanging the build.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_worker) as pool:
        for jobs in phases:
            for future in as_completed([pool.submit(process_video, job) for job in jobs]):
                done(future.result())


# ----------------------------------------------------------------------------------------------- entry points


def build_shards(dataset: str, root: str | Path, out: str | Path, cfg: ShardsConfig, *,
                 splits: list[str] | None = None, chunks: list[int] | None = None, task: Task = Task(),
                 progress: bool = True) -> list[Path]:
    """Build the shard sets of ``dataset`` (``splits``/``chunks``: a selection) under ``out``.

    Returns the manifests written (final or partial). Shard sets already built with the same settings are
    skipped; work files of an interrupted build are reused.
    """
    check_config(cfg)
    check_detector(cfg.detector)  # a configuration error stops the build here, not in every video
    root, out = Path(root), Path(out)
    settings = content_settings(cfg)
    listings = read_layout(dataset, root, cfg, chunks)
    builds = [ShardSetBuild(out, root, listing, task, settings) for name, listing in sorted(listings.items())
              if splits is None or listing.split in splits]
    pending = []
    for build in builds:
        if build.is_done():
            log.info("%s/%s is up to date", dataset, build.listing.name)
            if task.count > 1 and not build.manifest.is_file():
                merge_manifests(build.directory, task.count, task.tmp_suffix)
        else:
            build.prepare()
            pending.append(build)

    originals: list[VideoJob] = []
    fakes: list[VideoJob] = []
    cached = 0
    for build in pending:
        for entry in build.videos:
            original = build.by_path[entry.original] if entry.original else None
            if build.is_cached(entry) and (original is None or build.is_cached(original)):
                cached += 1
                continue
            job = VideoJob(entry, str(root), str(build.work_file(entry)),
                           str(build.work_file(original)) if original else None,
                           clips_for_split(entry.split, cfg), cfg, task.tmp_suffix, build.inputs[entry.path])
            (fakes if entry.original else originals).append(job)
    total = cached + len(originals) + len(fakes)
    log.info("%s: %d videos in %d shard sets (%d already done), %d workers", dataset, total, len(pending), cached,
             cfg.workers)
    with tqdm(total=total, initial=cached, unit="video", desc=f"{dataset} shards", disable=not progress) as bar:
        _run_jobs([originals, fakes], cfg.workers, bar)
    written = [build.pack() for build in pending]
    built = [ShardManifest.load(path).total_videos for path in written]
    if written and total and not sum(built):
        raise BuildError(f"{dataset}: every one of the {total} videos was skipped; the reasons are in the "
                         f"manifests' skipped lists: {', '.join(map(str, written))}")
    return written


def merge_manifests(directory: str | Path, count: int, tmp_suffix: str = ".tmp") -> Path | None:
    """Write ``manifest.json`` from the ``count`` partial manifests once all exist; None while some are missing."""
    directory = Path(directory)
    parts = [directory / f"manifest-part-{i:03d}-of-{count:03d}.json" for i in range(count)]
    if not all(p.is_file() for p in parts):
        return None
    manifests = [ShardManifest.load(p) for p in parts]
    if len({m.settings_sha256 for m in manifests}) != 1:
        raise BuildError(f"{directory}: the {count} partial manifests were built with different settings")
    sums = {key: sum(getattr(m, key) for m in manifests)
            for key in ("total_samples", "total_videos", "clips_without_face", "faces", "fake_faces_unchanged",
                        "fakes_without_original", "fakes_without_changed_face")}
    counts = {key: dict(sorted(sum((Counter(getattr(m, key)) for m in manifests), Counter()).items()))
              for key in ("samples_by_label", "samples_by_method", "videos_by_label", "videos_by_method")}
    lists = {key: [item for m in manifests for item in getattr(m, key)]
             for key in ("shards", "skipped", "missing", "unlisted", "warnings")}
    lists["shards"].sort(key=lambda s: s.name)
    lists["skipped"].sort(key=lambda s: s["path"])
    target = directory / MANIFEST
    replace(manifests[0], **sums, **counts, **lists, task=None).save(target, tmp_suffix)
    log.info("merged %d partial manifests into %s", count, target)
    return target


def merge_all(out: str | Path, count: int) -> tuple[list[Path], list[Path]]:
    """Merge the partial manifests of a ``count``-task build in every shard set under ``out``.

    Returns the manifests written and the shard sets whose parts are not all there yet.
    """
    directories = sorted({p.parent for p in Path(out).rglob(f"manifest-part-*-of-{count:03d}.json")})
    merged, incomplete = [], []
    for directory in directories:
        target = merge_manifests(directory, count)
        (merged if target else incomplete).append(target or directory)
    return merged, incomplete
