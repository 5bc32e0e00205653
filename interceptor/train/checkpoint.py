"""DeepSpeed checkpoints that are atomic, durable, findable and pruned.

Every rank writes its part with ``engine.save_checkpoint`` into ``.partial-<tag>/`` and fsyncs the files it
sees; after a barrier rank 0 writes the commit marker ``<tag>/commit.json`` (the save's sequence number, step
and world size), fsyncs the folder, renames it to ``<tag>/`` and atomically rewrites the ``latest`` file. A kill
at any moment leaves the previous checkpoints intact and at most one uncommitted folder, which resume ignores.
A save never deletes or overwrites a committed checkpoint: saving a step that already has one (a preemption
right after a periodic save) writes a new revision ``<tag>-<n>``.

Resume takes the checkpoint ``latest`` names. If ``latest`` is missing, empty or names no committed checkpoint
while committed ones exist, it takes the newest committed one (highest sequence number) and says so; it
never silently starts over. The newest ``keep_last`` committed checkpoints are kept (by sequence, not by
name), plus the ones ``latest`` and ``best`` name.

Checkpoints hold pickled optimizer and RNG state, so resume only loads checkpoints this trainer wrote in its
own run directory. Models meant to be shared are exported as safetensors (``best/``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from interceptor.distributed import barrier, broadcast_object
from interceptor.utils import atomic_write_json, atomic_write_text, fsync_dir, fsync_tree

log = logging.getLogger(__name__)

_PARTIAL = ".partial-"
COMMIT = "commit.json"


class CheckpointError(RuntimeError):
    """Checkpoints that cannot be resumed from as they are; the message names the path."""


def step_tag(step: int) -> str:
    return f"step{step:08d}"


class CheckpointManager:
    def __init__(self, directory: str | os.PathLike, keep_last: int, is_main: bool):
        self.directory = Path(directory)
        self.keep_last = max(1, keep_last)
        self.is_main = is_main

    # ------------------------------------------------------------------------------------------ reading

    def committed(self) -> dict[str, dict]:
        """Every committed checkpoint: tag -> its commit marker, oldest first (by sequence number)."""
        found = {}
        for path in self.directory.glob(f"step*/{COMMIT}") if self.directory.is_dir() else []:
            try:
                found[path.parent.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("%s: unreadable commit marker; the checkpoint is treated as incomplete", path)
        return dict(sorted(found.items(), key=lambda item: item[1]["sequence"]))

    def _named(self, name: str) -> str | None:
        """The tag the file ``name`` (latest, best) holds, if it names a committed checkpoint."""
        path = self.directory / name
        tag = path.read_text().strip() if path.is_file() else ""
        return tag if tag and (self.directory / tag / COMMIT).is_file() else None

    def latest_tag(self) -> str | None:
        return self._named("latest")

    def best_tag(self) -> str | None:
        return self._named("best")

    def resume_tag(self) -> str | None:
        """The checkpoint to resume from: the one ``latest`` names, else the newest committed one; None only
        when no committed checkpoint exists (and ``latest`` does not claim one)."""
        tag = self.latest_tag()
        if tag:
            return tag
        committed = self.committed()
        latest = self.directory / "latest"
        if committed:
            newest = list(committed)[-1]
            problem = "is missing" if not latest.is_file() else f"names {latest.read_text().strip()!r}, " \
                      "which is not a committed checkpoint"
            log.warning("%s %s: resuming from the newest committed checkpoint %s", latest, problem, newest)
            return newest
        if latest.is_file():
            raise CheckpointError(f"{latest} names {latest.read_text().strip()!r} but {self.directory} holds no "
                                  f"committed checkpoint (no */{COMMIT}): the checkpoints were lost or damaged. "
                                  "Restore them, or start over with --resume never")
        return None

    # ------------------------------------------------------------------------------------------ writing

    def save(self, engine, tag: str, client_state: dict, best: bool = False) -> Path:
        """Collective: every rank calls it with the same ``tag``; returns the committed folder (``tag``, or a
        new revision ``tag-<n>`` when ``tag`` is already committed)."""
        final = broadcast_object(self._free_name(tag) if self.is_main else None)
        partial = _PARTIAL + final
        if self.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.directory / partial, ignore_errors=True)
        barrier()
        engine.save_checkpoint(str(self.directory), tag=partial, client_state=client_state, save_latest=False)
        fsync_tree(self.directory / partial)  # each rank flushes what its node wrote
        barrier()
        if self.is_main:
            sequence = 1 + max((c["sequence"] for c in self.committed().values()), default=0)
            atomic_write_json(self.directory / partial / COMMIT, {
                "tag": final, "step": int(engine.global_steps), "sequence": sequence,
                "world_size": int(engine.world_size)})
            fsync_dir(self.directory / partial)
            os.rename(self.directory / partial, self.directory / final)
            fsync_dir(self.directory)
            atomic_write_text(self.directory / "latest", final + "\n")
            if best:
                atomic_write_text(self.directory / "best", final + "\n")
            self._prune()
        barrier()
        return self.directory / final

    def _free_name(self, tag: str) -> str:
        name, revision = tag, 1
        while (self.directory / name).exists():
            revision += 1
            name = f"{tag}-{revision}"
        return name

    def load(self, engine, tag: str) -> dict:
        """Collective: restore module, optimizer, LR scheduler and return the client state."""
        path, client_state = engine.load_checkpoint(str(self.directory), tag=tag, load_optimizer_states=True,
                                                    load_lr_scheduler_states=True)
        if path is None:
            raise CheckpointError(f"{self.directory / tag}: checkpoint could not be loaded")
        return client_state or {}

    def _prune(self) -> None:
        """Keep the newest ``keep_last`` committed checkpoints and those ``latest`` and ``best`` name; remove
        the rest and any uncommitted folder (rank 0 only, under the run directory's lock)."""
        keep = set(list(self.committed())[-self.keep_last:]) | {self.latest_tag(), self.best_tag()}
        for entry in self.directory.iterdir():
            stale_partial = entry.name.startswith(_PARTIAL)
            if entry.is_dir() and (stale_partial or (entry.name.startswith("step") and entry.name not in keep)):
                shutil.rmtree(entry, ignore_errors=True)
