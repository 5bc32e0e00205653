"""DeepSpeed checkpoints that are atomic, findable and pruned.

Every rank writes its part with ``engine.save_checkpoint`` into ``.partial-<tag>/``; after a barrier rank 0
renames the directory to ``<tag>/`` and atomically rewrites the ``latest`` file, so a kill at any moment
leaves either the previous checkpoint or the new one, never a half-written one that resume would pick up.
The last ``keep_last`` checkpoints are kept, plus the one recorded in ``best``.

Checkpoints hold pickled optimizer and RNG state, so resume only loads checkpoints this trainer wrote in its
own run directory. Models meant to be shared are exported as safetensors (``best/``).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from interceptor.train.distributed import barrier
from interceptor.utils import atomic_write_text

log = logging.getLogger(__name__)

_PARTIAL = ".partial-"


def step_tag(step: int) -> str:
    return f"step{step:08d}"


class CheckpointManager:
    def __init__(self, directory: str | os.PathLike, keep_last: int, is_main: bool):
        self.directory = Path(directory)
        self.keep_last = max(1, keep_last)
        self.is_main = is_main

    def _read(self, name: str) -> str | None:
        path = self.directory / name
        tag = path.read_text().strip() if path.is_file() else ""
        return tag if tag and (self.directory / tag).is_dir() else None

    def latest_tag(self) -> str | None:
        return self._read("latest")

    def best_tag(self) -> str | None:
        return self._read("best")

    def save(self, engine, tag: str, client_state: dict, best: bool = False) -> Path:
        """Collective: every rank calls it with the same ``tag``."""
        partial = _PARTIAL + tag
        if self.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.directory / partial, ignore_errors=True)
        barrier()
        engine.save_checkpoint(str(self.directory), tag=partial, client_state=client_state, save_latest=False)
        barrier()
        if self.is_main:
            final = self.directory / tag
            if final.exists():
                shutil.rmtree(final)
            os.replace(self.directory / partial, final)
            atomic_write_text(self.directory / "latest", tag + "\n")
            if best:
                atomic_write_text(self.directory / "best", tag + "\n")
            self._prune()
        barrier()
        return self.directory / tag

    def load(self, engine, tag: str) -> dict:
        """Collective: restore module, optimizer, LR scheduler and return the client state."""
        path, client_state = engine.load_checkpoint(str(self.directory), tag=tag, load_optimizer_states=True,
                                                    load_lr_scheduler_states=True)
        if path is None:
            raise RuntimeError(f"{self.directory / tag}: checkpoint could not be loaded")
        return client_state or {}

    def _prune(self) -> None:
        keep = set(sorted(self._tags())[-self.keep_last:])
        best = self.best_tag()
        if best:
            keep.add(best)
        for entry in self.directory.iterdir():
            stale_partial = entry.name.startswith(_PARTIAL)
            if entry.is_dir() and (stale_partial or (entry.name.startswith("step") and entry.name not in keep)):
                shutil.rmtree(entry, ignore_errors=True)

    def _tags(self) -> list[str]:
        return [p.name for p in self.directory.iterdir() if p.is_dir() and p.name.startswith("step")]
