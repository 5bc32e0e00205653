"""Helpers for tests that train: real torchrun launches, small curricula, re-packed shard sets."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "launcher" / "train.py"


def free_port() -> int:
    from interceptor.distributed import free_port as port

    return port()


def torchrun_command(args: list[str], nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), str(LAUNCHER), *map(str, args)]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 600, log: Path | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``launcher/train.py`` under a real ``torchrun``; output goes to ``log`` (and is returned)."""
    result = subprocess.run(torchrun_command(args, nproc), cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    return result


def worker_processes(torchrun_process: subprocess.Popen, count: int, timeout: float = 120) -> list:
    """The ``count`` training processes (``psutil.Process``) a torchrun started, once they all run."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        children = psutil.Process(torchrun_process.pid).children(recursive=True)
        workers = [p for p in children if "launcher/train.py" in " ".join(p.cmdline())]
        if len(workers) == count:
            return workers
        time.sleep(0.2)
    raise AssertionError("torchrun did not start its workers")


def write_curriculum(path: Path, stages: list[dict], eval_sets: list[str] | None = None) -> Path:
    path.write_text(yaml.safe_dump({"stages": stages, "eval_sets": eval_sets or []}, sort_keys=False))
    return path


def samples_of(shard_dir: Path) -> list[list[tuple[str, bytes]]]:
    """Every sample of a shard set as its tar members (name, bytes), in shard order."""
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    samples: list[list[tuple[str, bytes]]] = []
    for shard in manifest["shards"]:
        with tarfile.open(shard_dir / shard["name"]) as tar:
            current, key = [], None
            for member in tar:
                member_key = member.name.split(".", 1)[0]
                if key is not None and member_key != key:
                    samples.append(current)
                    current = []
                key = member_key
                current.append((member.name, tar.extractfile(member).read()))
            if current:
                samples.append(current)
    return samples


def repack(source: Path, target: Path, sizes: list[int]) -> Path:
    """A shard set at ``target`` holding the first sum(sizes) samples of ``source`` in shards of ``sizes``."""
    from dataclasses import replace

    from interceptor.shards.manifest import ShardFile, ShardManifest

    manifest = ShardManifest.load(source / "manifest.json")
    samples = samples_of(source)
    target.mkdir(parents=True, exist_ok=True)
    shards, labels, start = [], {"0": 0, "1": 0}, 0
    for number, size in enumerate(sizes):
        name = f"shard-000-{number:05d}.tar"
        with tarfile.open(target / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples[start:start + size]:
                for member, data in sample:
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                    if member.endswith(".cls"):
                        labels[data.decode().strip()] += 1
        data = (target / name).read_bytes()
        shards.append(ShardFile(name, size, len(data), hashlib.sha256(data).hexdigest()))
        start += size
    replace(manifest, shards=shards, samples_by_label=labels, total_samples=sum(sizes)).save(target / "manifest.json")
    return target


def write_manifest(directory: Path, shards: dict[str, int], real: int, fake: int, margin: float = 0.3) -> None:
    """A minimal valid ``manifest.json`` for hand-made shard sets: ``shards`` maps tar names to sample counts."""
    from interceptor.shards.manifest import FORMAT, ShardFile, ShardManifest

    by_label, total = {"0": real, "1": fake}, real + fake
    ShardManifest(FORMAT, 2, directory.parts[-2], directory.name, directory.name, None, 1, total, total, by_label, {},
                  by_label, {}, 0, [ShardFile(name, n, 0, "") for name, n in shards.items()], [], [], [], [],
                  faces=total, fake_faces_unchanged=0, fakes_without_original=0, fakes_without_changed_face=0,
                  protocol="test", settings={"margin": margin}).save(directory / "manifest.json")
