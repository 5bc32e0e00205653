#!/usr/bin/env python3
"""Lossless encodings of the shards' face crops: bytes, encoding time (the builder's) and decoding rate (the
loader's), on the frames of a shard.

    python bench/frame_codecs.py SHARD.tar [--frames 48] [--rounds 3]

Every frame of the shard's first clips is re-encoded with each candidate and checked to decode to the same
pixels; decoding (``cv2.imdecode``, one thread) then runs over every candidate's frames in alternating order for
``--rounds`` rounds. The table gives mean KB per frame, ms to encode one, the median round's frames/s decoded,
and that rate over the current setting's (``shards.png_filter=up``) measured in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import time

import cv2
import numpy as np

PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
CANDIDATES = {  # name: (extension, OpenCV parameters)
    "png, level 1, RLE, filter up (shards.png_filter=up)": (".png", PNG_FAST + [cv2.IMWRITE_PNG_FILTER,
                                                                               cv2.IMWRITE_PNG_FILTER_UP]),
    "png, level 1, RLE, adaptive filter (=adaptive)": (".png", PNG_FAST),
    "png, level 1, RLE, filter sub": (".png", PNG_FAST + [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]),
    "png, level 1, RLE, filter avg": (".png", PNG_FAST + [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_AVG]),
    "png, level 1, RLE, filter paeth": (".png", PNG_FAST + [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]),
    "png, level 1, RLE, no filter": (".png", PNG_FAST + [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]),
    "png, level 6, filter up": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_FILTER,
                                         cv2.IMWRITE_PNG_FILTER_UP]),
    "png, level 0 (stored)": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 0]),
    "webp, lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
}
CURRENT = next(iter(CANDIDATES))


def shard_frames(path: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of the shard at ``path``, decoded (BGR, as OpenCV encodes them)."""
    frames = []
    with tarfile.open(path) as tar:
        for member in tar:
            if member.name.endswith((".png", ".jpg")) and len(frames) < count:
                frames.append(cv2.imdecode(np.frombuffer(tar.extractfile(member).read(), np.uint8), cv2.IMREAD_COLOR))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shard")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = shard_frames(args.shard, args.frames)
    encoded, encode_ms = {}, {}
    for name, (extension, params) in CANDIDATES.items():
        start = time.perf_counter()
        encoded[name] = [cv2.imencode(extension, frame, params)[1] for frame in frames]
        encode_ms[name] = (time.perf_counter() - start) / len(frames) * 1000
        if not all(np.array_equal(cv2.imdecode(data, cv2.IMREAD_COLOR), frame)
                   for data, frame in zip(encoded[name], frames)):
            raise SystemExit(f"{name}: not lossless")
    rates: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for round_ in range(args.rounds):
        for name in list(CANDIDATES) if round_ % 2 == 0 else list(CANDIDATES)[::-1]:
            start = time.perf_counter()
            for data in encoded[name]:
                cv2.imdecode(data, cv2.IMREAD_COLOR)
            rates[name].append(len(frames) / (time.perf_counter() - start))
    print(f"{len(frames)} frames of {args.shard}, {frames[0].shape[1]}x{frames[0].shape[0]}; {args.rounds} rounds")
    print(f"| encoding | KB per frame | encode ms | decode frames/s | decode ÷ {CURRENT.split(' (')[0]} |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    for name in CANDIDATES:
        ratio = statistics.median(r / c for r, c in zip(rates[name], rates[CURRENT]))
        print(f"| {name} | {np.mean([len(d) for d in encoded[name]]) / 1024:.1f} | {encode_ms[name]:.1f} | "
              f"{statistics.median(rates[name]):.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
