#!/usr/bin/env python3
"""Shard builder throughput per worker, against decode-only, and peak memory per worker.

    python bench/build_shards.py VIDEO_OR_DIR... [--config FILE] [--eval] [--rounds N] [KEY=VALUE ...]

Two modes run in fresh single-process workers, alternately for ``--rounds`` rounds (so that a machine whose load
changes affects both alike), over the same videos:

- ``decode-only``: PyAV decodes every frame of every video (one thread, like a builder worker), nothing else;
- ``builder``: the builder's whole per-video task (``interceptor.shards.build.process_video``): decode,
  detect and track with the video's own detection (no box reuse from an original), crop, audio, PNG encoding
  and the atomic per-video work file.

It prints videos/s per worker for each (the median round), their ratio, the same ratio in CPU time (the worker's
user + system seconds: what the rate would be on a quiet machine, where another job's load does not stretch the
wall-clock time), and the peak RSS of each worker. The results go in BENCHMARKS.md; this is a measurement, not a
test.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config  # noqa: E402
from interceptor.schema import ShardsConfig  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_only(paths: list[tuple[str, str]]) -> tuple[float, float, float]:
    """Seconds (wall clock, CPU) to decode every frame of every video, and this worker's peak RSS (MB)."""
    import av

    start, cpu = time.perf_counter(), _cpu_seconds()
    for root, rel in paths:
        with av.open(f"{root}/{rel}") as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for _ in container.decode(stream):
                pass
    return time.perf_counter() - start, _cpu_seconds() - cpu, _peak_rss_mb()


def build(paths: list[tuple[str, str]], cfg: ShardsConfig, num_clips: int) -> tuple[float, float, float]:
    """Seconds (wall clock, CPU) for the builder's per-video task on every video, and this worker's peak RSS
    (MB)."""
    from interceptor.shards.build import VideoJob, init_worker, input_identity, process_video
    from interceptor.shards.layouts import VideoEntry

    init_worker()
    with tempfile.TemporaryDirectory() as work:
        start, cpu = time.perf_counter(), _cpu_seconds()
        for i, (root, rel) in enumerate(paths):
            entry = VideoEntry("dfdc", "train", 0, "original", Path(rel).stem, 0, rel)
            record = process_video(VideoJob(entry, root, f"{work}/{i}.tar", None, num_clips, cfg, ".tmp",
                                            input_identity(Path(root), entry)))
            if record["status"] != "ok":
                print(f"  {rel}: skipped: {record['reason']}", file=sys.stderr)
        return time.perf_counter() - start, _cpu_seconds() - cpu, _peak_rss_mb()


def _in_fresh_worker(function, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def videos_of(items: list[str]) -> list[tuple[str, str]]:
    """(root, path relative to it) of each video: a directory is a dataset root (the boxes backend's keys)."""
    paths = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += [(str(path), p.relative_to(path).as_posix()) for p in sorted(path.rglob("*.mp4"))]
        else:
            paths.append((str(path.parent), path.name))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", help="video files, or dataset roots (searched for *.mp4)")
    parser.add_argument("--config", help="a packaged config's name (demo, default) or a YAML path (default: demo)")
    parser.add_argument("--eval", action="store_true", help="sample eval_clips_per_video (val/test) clips")
    parser.add_argument("--rounds", type=int, default=3)
    args, overrides = parser.parse_known_args()
    cfg = load_config(args.config, overrides).shards
    paths = videos_of(args.videos)
    num_clips = cfg.eval_clips_per_video if args.eval else cfg.clips_per_video
    print(f"{len(paths)} videos; {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}; crop {cfg.crop_size}, {num_clips} clips x {cfg.frames_per_clip} frames, "
          f"detector {cfg.detector.backend} every {cfg.detector.every} (full every {cfg.detector.full_every}) "
          f"at {cfg.detector.size} px", flush=True)
    results: dict[str, list[tuple[float, float, float]]] = {"decode-only": [], "builder": []}
    for round_ in range(args.rounds):
        results["decode-only"].append(_in_fresh_worker(decode_only, paths))
        results["builder"].append(_in_fresh_worker(build, paths, cfg, num_clips))
        print(f"round {round_ + 1}: " + ", ".join(f"{mode} {r[-1][0]:.2f} s ({r[-1][1]:.2f} s CPU)"
                                                  for mode, r in results.items()), flush=True)
    rates = {mode: len(paths) / statistics.median(s for s, _, _ in r) for mode, r in results.items()}
    cpu = {mode: statistics.median(c for _, c, _ in r) for mode, r in results.items()}
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    print("| mode | videos/s per worker | peak RSS per worker |\n| --- | --- | --- |")
    for mode, r in results.items():
        print(f"| {mode} | {rates[mode]:.2f} | {max(m for _, _, m in r):.0f} MB |")
    print(f"builder / decode-only: {rates['builder'] / rates['decode-only']:.2f} "
          f"(in CPU time: {cpu['decode-only'] / cpu['builder']:.2f})")


if __name__ == "__main__":
    main()
