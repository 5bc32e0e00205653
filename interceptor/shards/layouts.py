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
- FF++ DeepFakeDetection (``dfd``) and the DFDC public test set (``dfdc_test``, its ``labels.csv``): evaluation
  datasets without an official split, built into ``test`` whole.

A requested folder without videos (a method, a compression level, a Celeb-DF folder) is a :class:`LayoutError`
naming the path it expected, never an empty build.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from interceptor import DATASETS, LABEL_FAKE, LABEL_REAL
from interceptor.schema import FFPP_METHODS, FFPP_OPTIONAL_METHODS, ShardsConfig
from interceptor.utils import read_json

SPLITS = ("train", "val", "test")


class LayoutError(ValueError):
    """The dataset layout is broken (a split file, list or metadata is unreadable or inconsistent)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video to build, as its dataset describes it."""

    dataset: str  # one of DATASETS
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
    protocol: str | None = None  # FF++: which methods the fakes come from (standard, or with FaceShifter)


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


def _required_videos(root: Path, rel: str, what: str) -> list[Path]:
    """The videos of a folder the build needs; none is an error naming the folder (and what is there instead)."""
    found = _videos(root / rel)
    if not found:
        parent = (root / rel).parent
        beside = sorted(p.name for p in parent.parent.iterdir() if p.is_dir()) if parent.parent.is_dir() else []
        raise LayoutError(f"{root / rel}: no .mp4 videos for {what}" +
                          (f" (found folders: {', '.join(beside)} in {parent.parent})" if beside else ""))
    return found


def _named_videos(root: Path, rel: str, what: str, pattern: str, reason: str,
                  skipped: list[dict]) -> Iterator[tuple[Path, str, re.Match]]:
    """The :func:`_required_videos` of ``rel`` whose name (stem) matches ``pattern``: the file, its path relative to
    ``root`` and the match; a video named otherwise is recorded in ``skipped`` with ``reason``."""
    for file in _required_videos(root, rel, what):
        path = file.relative_to(root).as_posix()
        match = re.fullmatch(pattern, file.stem)
        if match:
            yield file, path, match
        else:
            skipped.append({"path": path, "reason": reason})


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
_FFPP_SPLITS_SOURCE = "https://github.com/ondyari/FaceForensics/tree/master/dataset/splits"


def _ffpp_split_of(root: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split in SPLITS:
        path = root / f"{split}.json"
        if not path.is_file():
            raise LayoutError(f"{path}: missing. The FF++ download script does not fetch the official split lists: "
                              f"take train.json, val.json and test.json from dataset/splits/ of the FaceForensics "
                              f"repository ({_FFPP_SPLITS_SOURCE}) and put them in {root}")
        pairs = _read_json(path, "FF++ split file")
        if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(i, str) for i in p) for p in pairs):
            raise LayoutError(f"{path}: malformed FF++ split file: expected a list of [\"NNN\", \"MMM\"] pairs")
        for pair in pairs:
            for video in pair:
                if split_of.setdefault(video, split) != split:
                    raise LayoutError(f"{path}: id {video} is also in {split_of[video]}.json")
    return split_of


def ffpp_protocol(methods: list[str]) -> str:
    """How a build's FF++ fakes compare to the standard protocol: ``standard`` (its four methods),
    ``standard+FaceShifter``, or ``custom: A, B`` for any other choice."""
    if sorted(methods) == sorted(FFPP_METHODS):
        return "standard"
    if sorted(methods) == sorted(FFPP_METHODS + FFPP_OPTIONAL_METHODS):
        return "standard+FaceShifter"
    return "custom: " + ", ".join(methods)


def read_ffpp(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """FF++ at ``cfg.ffpp_compression``: youtube originals and ``cfg.ffpp_methods`` fakes, official splits."""
    split_of = _ffpp_split_of(root)
    listings = _listings("ffpp")
    comp = cfg.ffpp_compression
    for listing in listings.values():
        listing.protocol = ffpp_protocol(cfg.ffpp_methods)

    def unassigned(path: str, reason: str) -> None:
        listings["train"].skipped.append({"path": path, "reason": reason})

    for file in _required_videos(root, _FFPP_ORIGINAL.format(c=comp), f"the originals at {comp}"):
        rel = file.relative_to(root).as_posix()
        split = split_of.get(file.stem)
        if split is None:
            unassigned(rel, f"id {file.stem} is in none of train/val/test.json")
            continue
        listings[split].videos.append(VideoEntry("ffpp", split, None, "original", f"original/{file.stem}",
                                                 LABEL_REAL, rel, identity=file.stem))
    known = FFPP_METHODS + FFPP_OPTIONAL_METHODS
    for method in cfg.ffpp_methods:
        what = f"method {method} at {comp}" + ("" if method in known else
                                              f" (shards.ffpp_methods: the FF++ methods are {', '.join(known)})")
        for file, rel, match in _named_videos(root, _FFPP_FAKE.format(m=method, c=comp), what, r"(\d+)_(\d+)",
                                              "fake name is not TARGET_SOURCE (NNN_MMM)", listings["train"].skipped):
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


_DFD_ORIGINAL = "original_sequences/actors/{c}/videos"
_DFD_FAKE = "manipulated_sequences/DeepFakeDetection/{c}/videos"


def read_dfd(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """FF++'s DeepFakeDetection (paid actors; originals ``NN__scene``, fakes ``NN_MM__scene__CODE``) at
    ``cfg.ffpp_compression``: no official split, so everything goes to ``test`` (cross-dataset evaluation)."""
    comp = cfg.ffpp_compression
    listings = _listings("dfd")
    test = listings["test"]
    for file, rel, match in _named_videos(root, _DFD_ORIGINAL.format(c=comp),
                                          f"the DeepFakeDetection originals at {comp}", r"(\d+)__(.+)",
                                          "original name is not ACTOR__scene", test.skipped):
        test.videos.append(VideoEntry("dfd", "test", None, "original", f"original/{file.stem}", LABEL_REAL, rel,
                                      identity=match.group(1)))
    for file, rel, match in _named_videos(root, _DFD_FAKE.format(c=comp), f"the DeepFakeDetection fakes at {comp}",
                                          r"(\d+)_(\d+)__(.+)__([A-Za-z0-9]+)",
                                          "fake name is not TARGET_SOURCE__scene__CODE", test.skipped):
        target, _, scene, _ = match.groups()
        original_id = f"{target}__{scene}"
        test.videos.append(VideoEntry(
            "dfd", "test", None, "DeepFakeDetection", f"DeepFakeDetection/{file.stem}", LABEL_FAKE, rel,
            original=f"{_DFD_ORIGINAL.format(c=comp)}/{original_id}.mp4", original_id=f"original/{original_id}",
            identity=target))
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


def _celebdf_folder(root: Path, folder: str) -> str:
    """Where a Celeb-DF folder's videos are: ``FOLDER/`` as released, or ``FOLDER/videos/`` as some preprocessing
    repositories rearrange it. Neither is an error naming both."""
    for rel in (folder, f"{folder}/videos"):
        if _videos(root / rel):
            return rel
    raise LayoutError(f"{root / folder}: no .mp4 videos (nor in {root / folder / 'videos'}); Celeb-DF v2 needs "
                      f"{', '.join(_CELEBDF_FOLDERS)} with their videos")


def read_celebdf(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """Celeb-DF v2: the official test list, then val by identity and train for the rest."""
    tests = _celebdf_test_list(root)
    listings = _listings("celebdf")
    entries = []
    listed_as: dict[str, str] = {}  # the path as the test list names it (FOLDER/NAME.mp4), by the actual path
    folders = {folder: _celebdf_folder(root, folder) for folder in _CELEBDF_FOLDERS}
    for folder, label in _CELEBDF_FOLDERS.items():
        for file in _videos(root / folders[folder]):
            rel = file.relative_to(root).as_posix()
            listed_as[rel] = f"{folder}/{file.name}"
            identity = _celebdf_identity(folder, file.stem)
            original = original_id = None
            if folder == "Celeb-synthesis" and identity:
                original_id = f"{identity}_{file.stem.rsplit('_', 1)[1]}"
                original = f"{folders['Celeb-real']}/{original_id}.mp4"
            entries.append(VideoEntry("celebdf", "train", None, folder, file.stem, tests.get(listed_as[rel], label),
                                      rel, original=original, original_id=original_id, identity=identity))
    present = set(listed_as.values())
    listings["test"].missing = sorted(rel for rel in tests if rel not in present)

    # Val: a share of the non-test identities (ranked by a stable hash), and of the videos without one.
    in_test = {e.path for e in entries if listed_as[e.path] in tests}
    identities = sorted({e.identity for e in entries if e.identity and e.path not in in_test}, key=stable_fraction)
    val_identities = set(identities[:round(cfg.celebdf_val_fraction * len(identities))])
    test_ids = {e.video_id for e in entries if e.path in in_test}
    for entry in entries:
        if entry.path in in_test:
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


def _dfdc_part(directory: Path) -> Path:
    """The folder holding a part's ``metadata.json``: the part itself, or the one part folder an unzip nested in
    it (``dfdc_train_part_07/dfdc_train_part_7/``)."""
    if (directory / "metadata.json").is_file():
        return directory
    nested = [d for d in directory.glob("dfdc_train_part_*") if (d / "metadata.json").is_file()]
    return nested[0] if len(nested) == 1 else directory


def dfdc_chunks(root: Path) -> dict[int, Path]:
    """Chunk K -> its folder: ``dfdc_train_part_K`` (zero padding allowed), or the part nested one level in it."""
    chunks: dict[int, Path] = {}
    for directory in sorted(root.glob("dfdc_train_part_*")):
        match = re.fullmatch(r"dfdc_train_part_(\d+)", directory.name)
        if match and directory.is_dir():
            chunk = int(match.group(1))
            if chunk in chunks:
                raise LayoutError(f"{root}: two folders for chunk {chunk}: {chunks[chunk].name} and {directory.name}")
            chunks[chunk] = _dfdc_part(directory)
    return dict(sorted(chunks.items()))


def read_dfdc_chunk(root: Path, chunk: int, directory: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """One ``dfdc_train_part_K`` (in ``directory``): its metadata's labels and originals, clusters held out for val
    and test."""
    metadata = _dfdc_metadata(directory / "metadata.json")
    listings = _listings("dfdc", chunk)
    part = directory.relative_to(root).as_posix()
    files = {p.name: p for p in _videos(directory)}
    for name in sorted(set(files) - set(metadata)):
        listings[dfdc_split(name, cfg)].unlisted.append(files[name].relative_to(root).as_posix())
    for name, info in sorted(metadata.items()):
        rel = f"{part}/{name}"
        original = info.get("original") if info["label"] == "FAKE" else None
        split = dfdc_split(original or name, cfg)
        if name not in files:
            listings[split].missing.append(rel)
            continue
        listings[split].videos.append(VideoEntry(
            "dfdc", split, chunk, "fake" if info["label"] == "FAKE" else "original", Path(name).stem,
            LABEL_FAKE if info["label"] == "FAKE" else LABEL_REAL, rel,
            original=f"{part}/{original}" if original else None,
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
        for listing in read_dfdc_chunk(root, chunk, available[chunk], cfg).values():
            listings[listing.name] = listing
    return listings


DFDC_TEST_LABELS = "labels.csv"


def read_dfdc_test(root: Path, cfg: ShardsConfig) -> dict[str, ShardSetListing]:
    """The DFDC public test set: ``labels.csv`` (``filename,label``, 1 = fake) in ``root`` (or ``root/test``), the
    videos beside it or in its ``videos/``. No originals are known: every video keeps its label. All is ``test``."""
    path = next((p for p in (root / DFDC_TEST_LABELS, root / "test" / DFDC_TEST_LABELS) if p.is_file()), None)
    if path is None:
        raise LayoutError(f"{root / DFDC_TEST_LABELS}: missing (the DFDC test set's labels, columns filename,label)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LayoutError(f"{path}: cannot read the DFDC test labels: {err}") from None
    listings = _listings("dfdc_test")
    test = listings["test"]
    folders = [path.parent, path.parent / "videos"]
    files = {p.name: p for folder in folders for p in _videos(folder)}
    listed = set()
    for number, row in enumerate(rows, 2):
        name, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
        if not name or label not in ("0", "1"):
            raise LayoutError(f"{path}:{number}: expected 'filename,label' with label 0 (real) or 1 (fake), got {row}")
        listed.add(name)
        if name not in files:
            test.missing.append((path.parent / name).relative_to(root).as_posix())
            continue
        test.videos.append(VideoEntry("dfdc_test", "test", None, "fake" if label == "1" else "original",
                                      Path(name).stem, int(label), files[name].relative_to(root).as_posix()))
    test.unlisted = sorted(p.relative_to(root).as_posix() for name, p in files.items() if name not in listed)
    test.videos.sort(key=lambda v: v.path)
    return listings


_READERS = {"ffpp": read_ffpp, "celebdf": read_celebdf, "dfd": read_dfd, "dfdc_test": read_dfdc_test}


def read_layout(dataset: str, root: str | Path, cfg: ShardsConfig,
                chunks: list[int] | None = None) -> dict[str, ShardSetListing]:
    """Every shard set of ``dataset`` under ``root``, keyed by its name (``train``, ``chunk-03/val`` ...).

    A layout that gives no video at all is an error: a build never comes out empty without a word.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root not found")
    if dataset == "dfdc":
        listings = read_dfdc(root, cfg, chunks)
    elif dataset in _READERS:
        listings = _READERS[dataset](root, cfg)
    else:
        raise LayoutError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    if not any(listing.videos for listing in listings.values()):
        missing = sum(len(listing.missing) for listing in listings.values())
        raise LayoutError(f"{root}: no {dataset} video to build" +
                          (f" ({missing} listed videos are missing)" if missing else ""))
    return listings


def clips_for_split(split: str, cfg: ShardsConfig) -> int:
    """Clips sampled per video in ``split``: more for evaluation."""
    return cfg.clips_per_video if split == "train" else cfg.eval_clips_per_video
