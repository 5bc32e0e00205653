"""Samples and tar files: keys, the files of one sample, deterministic tars, size-bounded shards.

The tar writer is ours rather than ``webdataset.TarWriter``/``ShardWriter``: those stamp the current time into
every header (so rebuilt shards differ byte for byte) and write straight to the final name (so a crash leaves a
partial shard visible). Here headers are fixed (mtime 0, root, mode 0644) and every tar is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from interceptor.schema import ShardsConfig
from interceptor.shards.extract import Clip, VideoClips
from interceptor.shards.layouts import VideoEntry
from interceptor.utils import atomic_path

BUILDER_VERSION = 2  # 2: several faces per video (face field and key part), display rotation; 1: largest face only
# OpenCV's PNG filter parameters per shards.png_filter ("adaptive": libpng's default per-row choice).
PNG_FILTERS = {"up": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP], "adaptive": []}
Member = tuple[str, bytes]  # (file name inside the tar, contents)
# The fields of a sample's json, as documented in shards/FORMAT.md.
SAMPLE_FIELDS = (
    "dataset", "split", "chunk", "method", "video_id", "original_id", "identity", "label", "source", "face",
    "num_faces", "face_change", "clip",
    "num_frames", "frame_indices", "fps", "start_time", "end_time", "frame_size", "rotation", "crop_size", "margin",
    "image_format", "boxes", "crop_boxes", "scores", "detector", "has_audio", "audio_rate", "audio_samples",
    "builder_version",
)


# ----------------------------------------------------------------------------------------------- keys


def key_part(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9_]`` (no dots, no dashes); a changed text gets a short stable hash."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if clean == text and clean:
        return clean
    return f"{clean}_{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def video_key(entry: VideoEntry) -> str:
    """``dataset-split-method-videoid``: the key of a video, and the prefix of its clips' keys."""
    split = entry.split if entry.chunk is None else f"chunk{entry.chunk:02d}_{entry.split}"
    name = entry.video_id.rsplit("/", 1)[-1]  # FF++ ids carry the method, already in the key
    method = re.sub(r"[^a-z0-9_]", "_", entry.method.lower())
    return "-".join([entry.dataset, split, method, key_part(name)])


def clip_key(entry: VideoEntry, face: int, clip_index: int) -> str:
    return f"{video_key(entry)}-face{face}-clip{clip_index:02d}"


# ----------------------------------------------------------------------------------------------- samples


def encode_image(rgb: np.ndarray, cfg: ShardsConfig) -> bytes:
    """PNG (lossless) or JPEG at ``cfg.jpeg_quality``; encoders are deterministic, so are the bytes."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if cfg.image_format == "png":
        # Fast zlib settings (they change the file size, never the pixels): level 1 with run-length matching
        # is as fast as level 1 alone and smaller than level 3 on face crops; the row filter (shards.png_filter)
        # sets how fast the trainer decodes.
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                             cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                             *PNG_FILTERS[cfg.png_filter]])
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {cfg.image_format} image")
    return data.tobytes()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _rounded(rows: np.ndarray, digits: int) -> list:
    return np.round(rows.astype(np.float64), digits).tolist()


def clip_metadata(entry: VideoEntry, video: VideoClips, clip: Clip, cfg: ShardsConfig, label: int,
                  face_change: float | None) -> dict:
    """The ``json`` of a sample (documented field by field in shards/FORMAT.md): ``label`` is the face's,
    ``face_change`` its difference from the original's face (None without an original)."""
    start, end = video.clip_times(clip)
    return {
        "dataset": entry.dataset, "split": entry.split, "chunk": entry.chunk, "method": entry.method,
        "video_id": entry.video_id, "original_id": entry.original_id, "identity": entry.identity,
        "label": label, "source": entry.path, "face": clip.face, "num_faces": len(video.tracks),
        "face_change": None if face_change is None else round(face_change, 3), "clip": clip.index,
        "num_frames": len(clip.frame_indices), "frame_indices": clip.frame_indices,
        "fps": round(video.info.fps, 4), "start_time": round(start, 4), "end_time": round(end, 4),
        "frame_size": [video.info.width, video.info.height], "rotation": video.info.rotation,
        "crop_size": cfg.crop_size, "margin": cfg.margin,
        "image_format": cfg.image_format, "boxes": _rounded(clip.boxes, 2), "crop_boxes": clip.crop_boxes.tolist(),
        "scores": _rounded(clip.scores, 4), "detector": video.detector,
        "has_audio": clip.audio is not None, "audio_rate": cfg.audio_rate,
        "audio_samples": len(clip.audio) if clip.audio is not None else 0,
        "builder_version": BUILDER_VERSION,
    }


def clip_members(entry: VideoEntry, video: VideoClips, clip: Clip, cfg: ShardsConfig, label: int,
                 face_change: float | None) -> list[Member]:
    """The files of one sample, in their order inside the tar."""
    key = clip_key(entry, clip.face, clip.index)
    meta = json.dumps(clip_metadata(entry, video, clip, cfg, label, face_change), sort_keys=True).encode("utf-8")
    members = [(f"{key}.cls", str(label).encode("ascii")), (f"{key}.json", meta)]
    members += [(f"{key}.f{t:02d}.{cfg.image_format}", encode_image(frame, cfg)) for t, frame in enumerate(clip.frames)]
    if clip.audio is not None:
        members.append((f"{key}.audio.npy", encode_npy(clip.audio.astype(np.int16))))
    return members


def sample_key(name: str) -> str:
    """The sample key of a tar member name (everything before the first dot, as WebDataset reads it)."""
    return name.split(".", 1)[0]


# ----------------------------------------------------------------------------------------------- tar files


@contextlib.contextmanager
def atomic_tar(path: str | os.PathLike, tmp_suffix: str = ".tmp") -> Iterator[tarfile.TarFile]:
    """A tar open for writing under a temporary name, renamed onto ``path`` when the block completes."""
    with atomic_path(path, suffix=tmp_suffix) as tmp:
        with open(tmp, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                yield tar
            fh.flush()
            os.fsync(fh.fileno())


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a regular file with fixed metadata, so that the same contents give the same tar bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def tar_bytes(members: list[Member]) -> int:
    """Bytes the members take in a tar: a 512-byte header each, data padded to 512."""
    return sum(512 + -(-len(data) // 512) * 512 for _, data in members)


def read_members(path: str | os.PathLike) -> Iterator[Member]:
    with tarfile.open(path, "r") as tar:
        for info in tar:
            if info.isreg():
                yield info.name, tar.extractfile(info).read()


def group_samples(members: Iterable[Member]) -> Iterator[list[Member]]:
    """Consecutive members with the same key, as WebDataset groups them."""
    sample: list[Member] = []
    for name, data in members:
        if sample and sample_key(name) != sample_key(sample[0][0]):
            yield sample
            sample = []
        sample.append((name, data))
    if sample:
        yield sample


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shards(samples: Iterable[list[Member]], directory: Path, name_for, max_samples: int, max_bytes: int,
                 tmp_suffix: str = ".tmp") -> list[dict]:
    """Pack samples, in order, into tars of at most ``max_samples`` samples and about ``max_bytes`` bytes.

    ``name_for(i)`` names the i-th shard. Returns ``[{"name", "samples", "bytes", "sha256"}]``.
    """
    shards = []
    samples = iter(samples)
    pending = next(samples, None)
    while pending is not None:
        path = directory / name_for(len(shards))
        count = size = 0
        with atomic_tar(path, tmp_suffix) as tar:
            while pending is not None and (count == 0 or (count < max_samples and size + tar_bytes(pending) <= max_bytes)):
                for name, data in pending:
                    add_member(tar, name, data)
                count += 1
                size += tar_bytes(pending)
                pending = next(samples, None)
        shards.append({"name": path.name, "samples": count, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    return shards
