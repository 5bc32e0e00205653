"""Process-group set-up for torchrun (NCCL on GPU, gloo on CPU) and small collective helpers."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist


# Preemption: the training processes checkpoint and exit on these; their data-loader workers ignore them.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_distributed() -> DistInfo:
    """Join the process group torchrun set up (or a group of one when run without torchrun).

    DeepSpeed's accelerator is chosen before it is imported: CUDA when a GPU is visible, else its CPU
    accelerator (gloo), so the same code runs on both without changes.
    """
    cuda = torch.cuda.is_available()
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if cuda else "cpu")
    if "RANK" not in os.environ:  # plain `python launcher/train.py`: a world of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    import deepspeed

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shutdown_distributed() -> None:
    """Leave the process group before the interpreter exits (after a run that returned, on every rank).

    Without it gloo's worker threads outlive the interpreter and the process can abort at exit with "terminate
    called without an active exception" (pytorch#190489), turning a finished run into a failed one.
    """
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a list of one without a process group)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def from_main(function: Callable[[], Any], errors: type[Exception]) -> Any:
    """``function()`` run on rank 0 only, its result on every rank; an ``errors`` exception it raises is raised
    on every rank (so no rank is left waiting in a collective)."""
    outcome = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            outcome = ("result", function())
        except errors as err:
            outcome = ("error", err)
    kind, value = broadcast_object(outcome)
    if kind == "error":
        raise value
    return value


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
