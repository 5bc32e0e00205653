"""Readers of the official dataset layouts: FF++, Celeb-DF v2 and DFDC, into shard sets of labelled videos.

A *shard set* is one output directory (``train``, ``val``, ``test``; ``chunk-KK/train`` ... for DFDC) and the
videos that go in it. Every video has a label in the project convention (0 real, 1 fake), a method, an id unique
within its dataset, and, for a fake whose original is in the same shard set, that original (its face boxes are
reused). What cannot be used is reported, never dropped: videos outside every split (``skipped``), listed but
absent (``missing``), present but unlisted (``unlisted``).

Splits:

- FF++: the official ``train/val/test.json`` pairs; NNN, MMM, NNN_MMM and MMM_NNN follow their pair.
- Celeb-DF v2: test is ``List_of_testing_videos.txt`` (its label 1 means REAL); val is carved out of the rest
  by identity (Celeb-synthesis ``idX_idY_NNNN`` goes with its target ``idX``; YouTube-real by a stable hash of
  the name); train is everything else.
- DFDC: within each ``dfdc_train_part_K``, whole clusters (an original and every fake made from it) go to val or
  test by a stable hash of the cluster key (the original's file name), train otherwise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from interceptor import LABEL_FAKE, LABEL_REAL
from interceptor.schema import ShardsConfig
from interceptor.utils import read_json

SPLITS = ("train", "val", "test")
DATASETS = ("ffpp", "celebdf", "dfdc")


class LayoutError(ValueError):
    """The dataset layout is broken (a split file, list or metadata is unreadable or inconsistent)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video to build, as its dataset describes it."""

    dataset: str  # ffpp | celebdf | dfdc
    split: str  # train | val | test
    chunk: int | None  # DFDC chunk number
    method: str  # original, Deepfakes, ..., Celeb-real, Celeb-synthesis, YouTube-real, fake (DFDC)
    video_id: str  # unique within the dataset (FF++: method/name, since fake names repeat across methods)
    label: int  # 0 real, 1 fake
    path: str  # relative to the dataset root
    original: str | None = None  # path of the original in the same shard set, whose boxes a fake reuses
    original_id: str | None = None
    identity: str | None = None  # the person shown, where known (FF++: the target id; Celeb-DF: idX)

    @property
    def shard_set(self) -> str:
        return shard_set_name(self.split, self.chunk)


@dataclass
class ShardSetListing:
    """The videos of one shard set and what its source listed but cannot give."""

    name: str
    dataset: str
    split: str
    chunk: int | None = None
    videos: list[VideoEntry] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    missing: list[str] = field(default_factory=list)  # listed but absent
    unlisted: list[str] = field(default_factory=list)  # present but not listed


def shard_set_name(split: str, chunk: int | None) -> str:
    return split if chunk is None else f"chunk-{chunk:02d}/{split}"


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` alone (not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _read_json(path: Path, what: str):
    try:
        return read_json(path, what)
    except ValueError as err:
        raise LayoutError(str(err)) from None


def _videos(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.mp4") if p.is_file()) if directory.is_dir() else []


def _listings(dataset: str, chunk: int | None = None) -> dict[str, ShardSetListing]:
    return {s: ShardSetListing(shard_set_name(s, chunk), dataset, s, chunk) for s in SPLITS}


def _link_originals(listings: dict[str, ShardSetListing]) -> None:
    """Keep a fake's original only when that original is built in the same shard set."""
    for listing in listings.values():
        present = {v.path for v in listing.videos}
        listing.videos = sorted(
            (v if v.original is None or v.original in present else replace(v, original=None) for v in listing.videos),
            key=lambda v: v.path)


# ----------------------------------------------------------------------------------------------- FF++


_FFPP_ORIGINAL = "original_sequences/youtube/{c}/videos"
_FFPP_FAKE = "manipulated_sequences/{m}/{c}/videos"


def _ffpp_split_of(root: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split in SPLITS:
        path = root / f"{split}.json"
        pairs = _read_json(path, "FF++ split file")
        if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(i, str) for i in p) for p in pairs):
            raise LayoutError(f"{path}: malformed FF++ split file: expected a list of [\"NNN\", \"MMM\"] pairs")
        for pair in pairs:
            for video in pair:
                if split_of.setdefault(video, split) != split:
                    raise LayoutError(f"{path}: id {video} is also in {split_of[video]}.json")
    return split_of


def read_ffpp(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """FF++ at ``cfg.ffpp_compression``: youtube originals and ``cfg.ffpp_methods`` fakes, official splits."""
    split_of = _ffpp_split_of(root)
    listings = _listings("ffpp")
    comp = cfg.ffpp_compression

    def unassigned(path: str, reason: str) -> None:
        listings["train"].skipped.append({"path": path, "reason": reason})

    for file in _videos(root / _FFPP_ORIGINAL.format(c=comp)):
        rel = file.relative_to(root).as_posix()
        split = split_of.get(file.stem)
        if split is None:
            unassigned(rel, f"id {file.stem} is in none of train/val/test.json")
            continue
        listings[split].videos.append(VideoEntry("ffpp", split, None, "original", f"original/{file.stem}",
                                                 LABEL_REAL, rel, identity=file.stem))
    for method in cfg.ffpp_methods:
        for file in _videos(root / _FFPP_FAKE.format(m=method, c=comp)):
            rel = file.relative_to(root).as_posix()
            match = re.fullmatch(r"(\d+)_(\d+)", file.stem)
            if not match:
                unassigned(rel, "fake name is not TARGET_SOURCE (NNN_MMM)")
                continue
            target, source = match.groups()
            splits = {split_of.get(target), split_of.get(source)}
            if len(splits) != 1 or None in splits:
                unassigned(rel, f"ids {target} and {source} are not in one official pair's split "
                                f"({split_of.get(target)}, {split_of.get(source)})")
                continue
            split = splits.pop()
            original = f"{_FFPP_ORIGINAL.format(c=comp)}/{target}.mp4"
            listings[split].videos.append(VideoEntry(
                "ffpp", split, None, method, f"{method}/{file.stem}", LABEL_FAKE, rel, original=original,
                original_id=f"original/{target}", identity=target))
    _link_originals(listings)
    return listings


# ----------------------------------------------------------------------------------------------- Celeb-DF


_CELEBDF_FOLDERS = {"Celeb-real": LABEL_REAL, "Celeb-synthesis": LABEL_FAKE, "YouTube-real": LABEL_REAL}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"


def _celebdf_test_list(root: Path) -> dict[str, int]:
    """The official test list as {relative path: project label}; its own label 1 means REAL."""
    path = root / CELEBDF_TEST_LIST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise LayoutError(f"{path}: cannot read the Celeb-DF test list: {err.strerror}") from None
    tests: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*([01])\s+(\S.*?)\s*", line)
        if not match:
            raise LayoutError(f"{path}:{number}: expected '<1 real | 0 fake> <folder>/<file>.mp4', got {line!r}")
        official, rel = match.groups()
        rel = rel.replace("\\", "/").removeprefix("./")
        label = LABEL_REAL if official == "1" else LABEL_FAKE
        folder = rel.split("/", 1)[0]
        if folder in _CELEBDF_FOLDERS and _CELEBDF_FOLDERS[folder] != label:
            raise LayoutError(f"{path}:{number}: label {official} (1 = real) contradicts the folder {folder}")
        tests[rel] = label
    return tests


def _celebdf_identity(folder: str, stem: str) -> str | None:
    match = re.fullmatch(r"(id\d+)_(?:id\d+_)?\d+", stem) if folder != "YouTube-real" else None
    return match.group(1) if match else None


def read_celebdf(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """Celeb-DF v2: the official test list, then val by identity and train for the rest."""
    tests = _celebdf_test_list(root)
    listings = _listings("celebdf")
    entries = []
    for folder, label in _CELEBDF_FOLDERS.items():
        for file in _videos(root / folder):
            rel = file.relative_to(root).as_posix()
            identity = _celebdf_identity(folder, file.stem)
            original = original_id = None
            if folder == "Celeb-synthesis" and identity:
                original_id = f"{identity}_{file.stem.rsplit('_', 1)[1]}"
                original = f"Celeb-real/{original_id}.mp4"
            entries.append(VideoEntry("celebdf", "train", None, folder, file.stem, tests.get(rel, label), rel,
                                      original=original, original_id=original_id, identity=identity))
    present = {e.path for e in entries}
    listings["test"].missing = sorted(rel for rel in tests if rel not in present)

    # Val: a share of the non-test identities (ranked by a stable hash), and of the videos without one.
    identities = sorted({e.identity for e in entries if e.identity and e.path not in tests}, key=stable_fraction)
    val_identities = set(identities[:round(cfg.celebdf_val_fraction * len(identities))])
    test_ids = {e.video_id for e in entries if e.path in tests}
    for entry in entries:
        if entry.path in tests:
            split = "test"
        elif entry.identity in val_identities or (
                entry.identity is None and stable_fraction(entry.video_id) < cfg.celebdf_val_fraction):
            split = "val"
        else:
            split = "train"
        if split != "test" and entry.video_id in test_ids:
            raise LayoutError(f"{root / CELEBDF_TEST_LIST}: {entry.path} would land in {split}, but a video with "
                              f"the same id {entry.video_id} is in the test list")
        listings[split].videos.append(replace(entry, split=split))
    _link_originals(listings)
    return listings


# ----------------------------------------------------------------------------------------------- DFDC


def _dfdc_metadata(path: Path) -> dict[str, dict]:
    metadata = _read_json(path, "DFDC metadata")
    if not isinstance(metadata, dict):
        raise LayoutError(f"{path}: malformed DFDC metadata: expected a mapping of file name to its entry")
    for name, info in metadata.items():
        if not isinstance(info, dict) or info.get("label") not in ("FAKE", "REAL"):
            raise LayoutError(f"{path}: malformed DFDC metadata entry {name!r}: label must be FAKE or REAL")
        if info.get("original") is not None and not isinstance(info["original"], str):
            raise LayoutError(f"{path}: malformed DFDC metadata entry {name!r}: original must be a name or null")
    return metadata


def dfdc_split(cluster: str, cfg: ShardsConfig) -> str:
    """The split of a DFDC cluster (keyed by its original's file name), by a stable hash."""
    fraction = stable_fraction(cluster)
    if fraction < cfg.dfdc_test_fraction:
        return "test"
    return "val" if fraction < cfg.dfdc_test_fraction + cfg.dfdc_val_fraction else "train"


def dfdc_chunks(root: Path) -> dict[int, Path]:
    chunks = {}
    for directory in root.glob("dfdc_train_part_*"):
        match = re.fullmatch(r"dfdc_train_part_(\d+)", directory.name)
        if match and directory.is_dir():
            chunks[int(match.group(1))] = directory
    return dict(sorted(chunks.items()))


def read_dfdc_chunk(root: Path, chunk: int, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """One ``dfdc_train_part_K``: its metadata's labels and originals, clusters held out for val and test."""
    directory = root / f"dfdc_train_part_{chunk}"
    metadata = _dfdc_metadata(directory / "metadata.json")
    listings = _listings("dfdc", chunk)
    files = {p.name: p for p in _videos(directory)}
    for name in sorted(set(files) - set(metadata)):
        listings[dfdc_split(name, cfg)].unlisted.append(files[name].relative_to(root).as_posix())
    for name, info in sorted(metadata.items()):
        rel = f"{directory.name}/{name}"
        original = info.get("original") if info["label"] == "FAKE" else None
        split = dfdc_split(original or name, cfg)
        if name not in files:
            listings[split].missing.append(rel)
            continue
        listings[split].videos.append(VideoEntry(
            "dfdc", split, chunk, "fake" if info["label"] == "FAKE" else "original", Path(name).stem,
            LABEL_FAKE if info["label"] == "FAKE" else LABEL_REAL, rel,
            original=f"{directory.name}/{original}" if original else None,
            original_id=Path(original).stem if original else None))
    _link_originals(listings)
    return listings


def read_dfdc(root: Path, cfg: ShardsConfig, chunks: list[int] | None = None) -> dict[str, ShardSetListing]:
    available = dfdc_chunks(root)
    if not available:
        raise LayoutError(f"{root}: no dfdc_train_part_K directories")
    for chunk in chunks or []:
        if chunk not in available:
            raise LayoutError(f"{root}: no dfdc_train_part_{chunk} (found: {', '.join(map(str, available))})")
    listings = {}
    for chunk in chunks or available:
        for listing in read_dfdc_chunk(root, chunk, cfg).values():
            listings[listing.name] = listing
    return listings


def read_layout(dataset: str, root: str | Path, cfg: ShardsConfig,
                chunks: list[int] | None = None) -> dict[str, ShardSetListing]:
    """Every shard set of ``dataset`` under ``root``, keyed by its name (``train``, ``chunk-03/val`` ...)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root not found")
    if dataset == "ffpp":
        return read_ffpp(root, cfg)
    if dataset == "celebdf":
        return read_celebdf(root, cfg)
    if dataset == "dfdc":
        return read_dfdc(root, cfg, chunks)
    raise LayoutError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")


def clips_for_split(split: str, cfg: ShardsConfig) -> int:
    """Clips sampled per video in ``split``: more for evaluation."""
    return cfg.clips_per_video if split == "train" else cfg.eval_clips_per_video
