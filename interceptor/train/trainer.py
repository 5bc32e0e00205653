"""One trainer for every specialist and every curriculum stage: DeepSpeed data parallel over WebDataset shards.

A :class:`StageRun` says what to train (specialist, stage, chunk, shard sets, where from); :class:`Trainer`
runs it in its own run directory:

    run_dir/config.yaml        the fully resolved config
    run_dir/run.json           git commit, specialist, stage, world size, precision
    run_dir/metrics.jsonl      one line per evaluation (clip and video level)
    run_dir/tensorboard/       TensorBoard events
    run_dir/checkpoints/       DeepSpeed checkpoints (latest, best, last k), resumable
    run_dir/lock.json          the run holding the directory (interceptor/train/runlock.py)
    run_dir/best/              the best model on validation, exported as safetensors + JSON
    run_dir/done.json          written when the run completed (steps, best metric, the checkpoint it resumed from)
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from interceptor.config import save_resolved, to_dict
from interceptor.data.shard_sets import resolve_shard_sets
from interceptor.data.streams import TrainStream, loader
from interceptor.distributed import STOP_SIGNALS, DistInfo, all_gather_objects, any_rank, barrier, from_main
from interceptor.inputs import InputSpec, model_inputs
from interceptor.models import build_model
from interceptor.models.export import WEIGHTS, export_model, load_model
from interceptor.schema import Config
from interceptor.scoring import predict_clips
from interceptor.train.checkpoint import CheckpointError, CheckpointManager, step_tag
from interceptor.train.curriculum import StageRun, check_margins, run_steps
from interceptor.train.engine import PRECISION_DTYPES, build_engine, loss_scale, resolve_precision
from interceptor.data.frame_samples import epoch_samples
from interceptor.train.losses import build_loss, distillation_loss
from interceptor.train.monitor import RunMonitor
from interceptor.models.registry import configured_pseudo_fakes
from interceptor.train.runlock import RunLock, RunLocked
from interceptor.utils import atomic_write_json, git_commit

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpointed on a signal, run again to resume


class Preempted(Exception):
    """Raised after the checkpoint taken on SIGTERM/SIGINT/SIGUSR1 was written on every rank."""


class Diverged(RuntimeError):
    """More consecutive non-finite losses than ``train.max_nonfinite_steps``: the run stops."""


class PreemptionFlag:
    """Remembers that a termination signal arrived; the loop checkpoints at the next step boundary."""

    SIGNALS = STOP_SIGNALS

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> PreemptionFlag:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def new_window() -> dict:
    """The accumulators of one logging window: loss sum, micro-steps, samples, data wait, start time."""
    return {"loss": 0.0, "micro": 0, "samples": 0, "wait": 0.0, "start": time.perf_counter()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def use_deterministic_kernels(device: torch.device) -> None:
    """``train.deterministic``: kernels that give the same result on every run. On a GPU, cuBLAS gets a fixed
    workspace (before its first call) and cuDNN no autotuning; kernels without a deterministic form (atomic
    adds in some backward passes) warn instead of failing the run."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Trainer:
    def __init__(self, cfg: Config, run: StageRun, shards_root: Path, dist: DistInfo, resume: bool = True):
        self.cfg, self.run, self.dist, self.resume = cfg, run, dist, resume
        self.precision = resolve_precision(cfg.train.precision, dist.device)
        self.train_sets = resolve_shard_sets(shards_root, run.train_sets, f"{run.name}: train")
        self.val_sets = resolve_shard_sets(shards_root, run.val_sets, f"{run.name}: val")
        self.class_counts = tuple(sum(s.class_counts[c] for s in self.train_sets) for c in (0, 1))
        check_margins(cfg, self.train_sets + self.val_sets)
        samples = epoch_samples(sum(s.samples for s in self.train_sets), run.specialist, cfg.data)
        self.total_steps = max(1, run_steps(samples, run.epochs, cfg, dist.world))
        self.steps_per_epoch = self.total_steps // run.epochs
        self.schedule_steps = max(run.schedule_steps, self.total_steps)  # a chunked stage's, or this run's
        self.ckpt = CheckpointManager(run.run_dir / "checkpoints", cfg.train.keep_last, dist.is_main)
        self.monitor: RunMonitor | None = None

    # ------------------------------------------------------------------------------------------ set-up

    def _build(self) -> None:
        cfg, run = self.cfg, self.run
        seed_everything(cfg.train.seed + self.dist.rank)
        if cfg.train.deterministic:
            use_deterministic_kernels(self.dist.device)
        model = build_model(run.specialist, **to_dict(cfg.model))
        if run.init_from is not None:
            model.load_state_dict(load_file(str(run.init_from / WEIGHTS)), strict=True)
            log.info("%s: starting from %s", run.name, run.init_from)
        # Parameters stay contiguous under train.channels_last (DeepSpeed's broadcast and flat buffers view them as
        # bytes); the inputs are channels_last, and convolutions then run and return channels_last.
        model.to(self.dist.device)
        self.spec = InputSpec.of(model)
        # the specialist's pseudo-fakes: drawn by the loader, made on the device (model_inputs)
        self.pseudo_fake = configured_pseudo_fakes(run.specialist, cfg.data)
        self.engine, self.optimizer, self.scheduler = build_engine(model, cfg, self.precision, self.schedule_steps)
        if cfg.train.compile:
            self.engine.compile()
        self.teacher = None
        if run.teacher is not None:  # distillation: a frozen teacher scores every training batch too
            self.teacher = load_model(run.teacher, map_location="cpu").to(self.dist.device).eval().requires_grad_(False)
            log.info("%s: distilling %s into a %s student", run.name, run.teacher, cfg.model.backbone)
        self.loss_fn = build_loss(cfg.train.loss, self.class_counts, cfg.train.focal_gamma,
                                  cfg.data.balance).to(self.dist.device)
        self.dtype = PRECISION_DTYPES[self.precision]

    def _write_run_info(self) -> None:
        if not self.dist.is_main:
            return
        self.run.run_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(self.cfg, self.run.run_dir)
        atomic_write_json(self.run.run_dir / "run.json", {
            "specialist": self.run.specialist, "stage": self.run.stage_id, "name": self.run.name,
            "git_commit": git_commit(), "world_size": self.dist.world, "precision": self.precision,
            "train_sets": [s.name for s in self.train_sets], "val_sets": [s.name for s in self.val_sets],
            "class_counts": list(self.class_counts), "steps_per_epoch": self.steps_per_epoch,
            "init_from": str(self.run.init_from) if self.run.init_from else None,
            "teacher": str(self.run.teacher) if self.run.teacher else None,
            "continue_from": str(self.run.continue_from) if self.run.continue_from else None,
            "schedule_steps": self.schedule_steps,
        })

    # ------------------------------------------------------------------------------------------ state

    def _client_state(self) -> dict:
        """The loop's state; per-rank parts (data position, RNG) of every rank, since DeepSpeed saves the client
        state of data-parallel rank 0 only."""
        ranks = all_gather_objects({"position": dict(self.position), "rng": rng_state()})
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "batches_in_epoch": self.batches_in_epoch,
                "positions": [r["position"] for r in ranks], "best_metric": self.best_metric,
                "best_step": self.best_step, "rng": [r["rng"] for r in ranks], "counters": dict(self.counters),
                "pending_evaluation": self.pending_evaluation}

    def _restore(self, state: dict) -> None:
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.batches_in_epoch = state["batches_in_epoch"]
        self.best_metric, self.best_step = state["best_metric"], state["best_step"]
        self.counters.update(state["counters"])
        self.pending_evaluation = state["pending_evaluation"]
        saved_world = len(state["positions"])
        if saved_world != self.dist.world:
            log.warning("%s: the checkpoint was written by %d ranks, resuming on %d: ranks without a saved data "
                        "position or RNG state start their stream afresh (not an exact resume)", self.run.name,
                        saved_world, self.dist.world)
        if self.dist.rank < saved_world:
            self.position = {int(k): v for k, v in state["positions"][self.dist.rank].items()}
            set_rng_state(state["rng"][self.dist.rank])

    def _sync_batchnorm(self) -> None:
        """Average BatchNorm running statistics over the ranks.

        Unlike DDP, DeepSpeed does not broadcast buffers, so each rank's running statistics follow its own
        batches. They are averaged (as timm's training script does) before every evaluation and checkpoint:
        evaluations then score one model on every rank, the exported model is that model, and a resumed run
        starts from the buffers the uninterrupted one had.
        """
        if self.dist.world > 1:
            from timm.utils import distribute_bn

            distribute_bn(self.engine.module, self.dist.world, reduce=True)

    def _save(self, best: bool = False) -> None:
        self._sync_batchnorm()
        saved = self.ckpt.save(self.engine, step_tag(self.engine.global_steps), self._client_state(), best=best)
        log.info("%s: checkpoint %s saved", self.run.name, saved.name)

    # ------------------------------------------------------------------------------------------ loop

    def _train_loader(self):
        workers = max(1, self.cfg.data.workers)
        stream = TrainStream(self.train_sets, self.cfg.data, self.spec,
                             self.run.specialist in self.cfg.data.augment.preserve_pixels,
                             self.cfg.train.seed, self.epoch, self.dist.rank, self.dist.world,
                             skip=self.position, first_worker=self.batches_in_epoch % workers,
                             pseudo_fake=self.pseudo_fake)
        return iter(loader(stream, self.cfg.data, seed=self.cfg.train.seed + self.epoch))

    def prepare(self) -> None:
        """Build the model, engine and loss, open the monitor, and start at step 0 (``fit`` then resumes)."""
        self._build()
        self.monitor = RunMonitor(self.run.run_dir, self.dist.is_main)
        self.epoch = self.step_in_epoch = self.batches_in_epoch = 0
        self.position: dict[int, int] = {}
        self.best_metric, self.best_step = -math.inf, -1
        self.counters = {"nonfinite_skipped": 0, "corrupt_samples": 0}
        self.nonfinite_streak = 0
        self.pending_evaluation = False  # a checkpoint taken during an evaluation: resume runs it first
        self.grad_norm = None

    def fit(self, preemption: PreemptionFlag) -> dict:
        """Train (resuming when a checkpoint exists) under the run directory's lock; returns the best validation
        result. A signal ``preemption`` received (before or during the run) checkpoints and raises
        :class:`Preempted`."""
        lock = RunLock(self.run.run_dir)
        from_main(lock.acquire, RunLocked)
        try:
            return self._fit(preemption)
        finally:
            if self.dist.is_main:
                lock.release()

    def _fit(self, preemption: PreemptionFlag) -> dict:
        self._write_run_info()
        self.prepare()
        tag = from_main(self.ckpt.resume_tag, CheckpointError) if self.resume else None
        if tag:
            self._restore(self.ckpt.load(self.engine, tag))
            log.info("%s: resuming from checkpoint %s (epoch %d, step %d)", self.run.name, tag, self.epoch,
                     self.engine.global_steps)
        elif self.run.continue_from is not None:
            self._continue(CheckpointManager(self.run.continue_from, self.cfg.train.keep_last, self.dist.is_main))
        try:
            self._loop(preemption)
        finally:
            self.monitor.close()
        summary = {"best_metric": self.best_metric, "best_step": self.best_step,
                   "metric": self.cfg.train.selection_metric, "steps": self.engine.global_steps,
                   "resumed_from": tag}
        if self.dist.is_main:
            atomic_write_json(self.run.run_dir / "done.json", summary)
        barrier()
        return summary

    def _continue(self, previous: CheckpointManager) -> None:
        """Take over the previous chunk's weights, optimizer state and LR schedule (not its data position)."""
        tag = from_main(previous.resume_tag, CheckpointError)
        if tag is None:
            log.warning("%s: no checkpoint in %s to continue; starting from the initial weights", self.run.name,
                        previous.directory)
            return
        previous.load(self.engine, tag)
        log.info("%s: continuing %s/%s (step %d, lr %.3g)", self.run.name, previous.directory, tag,
                 self.engine.global_steps, self.scheduler.get_last_lr()[0])

    def _loop(self, preemption: PreemptionFlag) -> None:
        cfg = self.cfg
        bar = tqdm(total=self.total_steps, initial=self.epoch * self.steps_per_epoch + self.step_in_epoch,
                   desc=self.run.name, unit="step",
                   disable=not self.dist.is_main, dynamic_ncols=True, leave=False)
        if self.pending_evaluation:  # resumed from a checkpoint taken during an evaluation
            self._evaluate_and_select(preemption)
        while self.epoch < self.run.epochs:
            batches = self._train_loader()
            window = new_window()
            while self.step_in_epoch < self.steps_per_epoch:
                previous = self.engine.global_steps
                window = self.train_step(batches, window)
                bar.update(1)
                step = self.engine.global_steps
                last_of_epoch = self.step_in_epoch == self.steps_per_epoch
                if step == previous:
                    pass  # skipped (non-finite loss): nothing new to evaluate or save
                elif cfg.train.eval_every and step % cfg.train.eval_every == 0 and not last_of_epoch:
                    self._evaluate_and_select(preemption)
                elif cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0 and not last_of_epoch:
                    self._save()
                if any_rank(preemption.received is not None, self.dist.device):
                    self._save()
                    raise Preempted(f"{self.run.name}: stopped by signal at step {step}; checkpoint saved")
            self.epoch += 1
            self.step_in_epoch = self.batches_in_epoch = 0
            self.position = {}
            self._evaluate_and_select(preemption)
        bar.close()

    def train_step(self, batches: Iterator[dict], window: dict) -> dict:
        """One optimizer step (``train.grad_accum`` micro-steps) on the next batches; every ``train.log_every``
        steps the window is logged and a new one returned."""
        for _ in range(self.cfg.train.grad_accum):
            self._micro_step(batches, window)
        self.step_in_epoch += 1
        step = self.engine.global_steps
        if step % self.cfg.train.log_every == 0:
            self._log_window(window, step)
            return new_window()
        return window

    def record_batch(self, batch: dict) -> None:
        """Note a training batch: its worker's data position (checkpointed) and the corrupt samples its worker
        skipped since its previous batch (summed over every worker, epoch and resume)."""
        self.batches_in_epoch += 1
        self.position[batch["worker"]] = batch["consumed"]
        self.counters["corrupt_samples"] += batch["corrupt"]

    def _micro_step(self, batches: Iterator[dict], window: dict) -> None:
        start = time.perf_counter()
        batch = next(batches)
        window["wait"] += time.perf_counter() - start
        self.record_batch(batch)
        inputs = model_inputs(batch, self.spec, self.dist.device, self.dtype, self.cfg.train.channels_last,
                              self.pseudo_fake)
        labels = batch["label"].to(self.dist.device)
        logits = self.engine(**inputs)
        if self.teacher is None:
            loss = self.loss_fn(logits.float(), labels)
        else:
            with torch.no_grad(), torch.autocast(self.dist.device.type, self.dtype, enabled=self.precision != "fp32"):
                teacher_logits = self.teacher(**inputs)
            loss = distillation_loss(logits, teacher_logits, labels, self.loss_fn, self.cfg.distill.temperature,
                                     self.cfg.distill.alpha)
        # The one host sync of a micro-step: the guard needs the value before backward, the window reuses it.
        loss_value = loss.item()
        if any_rank(not math.isfinite(loss_value), self.dist.device):
            self.counters["nonfinite_skipped"] += 1  # no backward, no step: the weights stay clean
            self.nonfinite_streak += 1
            log.warning("%s: non-finite loss at step %d skipped on all ranks", self.run.name, self.engine.global_steps)
            if self.nonfinite_streak > self.cfg.train.max_nonfinite_steps:
                raise Diverged(f"{self.run.name}: {self.nonfinite_streak} consecutive non-finite losses at step "
                               f"{self.engine.global_steps}, more than train.max_nonfinite_steps = "
                               f"{self.cfg.train.max_nonfinite_steps}: the run diverged (lower train.lr or "
                               "train.lr_scale, or check the data)")
            return
        self.nonfinite_streak = 0
        self.engine.backward(loss)
        boundary = self.engine.is_gradient_accumulation_boundary()
        if boundary and (self.engine.global_steps + 1) % self.cfg.train.log_every == 0:
            self.grad_norm = self._grad_norm()
        self.engine.step()
        window["loss"] += loss_value
        window["micro"] += 1
        window["samples"] += len(labels)

    def _grad_norm(self) -> float | None:
        """The global gradient norm before clipping, for optimizers DeepSpeed does not ask for it (fp32, ZeRO 0).

        Gradients are already all-reduced at the accumulation boundary, so every rank sees the global norm.
        """
        if hasattr(self.engine.optimizer, "_global_grad_norm"):
            return None  # DeepSpeed's fp16 / bf16 / ZeRO optimizers record it during step()
        grads = [p.grad.detach().float().norm() for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else None

    def _log_window(self, window: dict, step: int) -> None:
        elapsed = max(time.perf_counter() - window["start"], 1e-9)
        rate = window["samples"] / elapsed
        total_rate = sum(all_gather_objects(rate))
        grad_norm = self.engine.get_global_grad_norm() or self.grad_norm
        values = {
            "loss": window["loss"] / max(1, window["micro"]), "lr": self.scheduler.get_last_lr()[0],
            "loss_scale": loss_scale(self.engine), "overflow_skipped": float(self.engine.skipped_steps),
            "grad_norm": float(grad_norm) if grad_norm is not None else math.nan,
            "samples_per_sec_rank": rate, "samples_per_sec_total": total_rate,
            "data_wait_fraction": window["wait"] / elapsed, **{k: float(v) for k, v in self.counters.items()},
        }
        self.monitor.scalars(values, step, "train")

    # ------------------------------------------------------------------------------------------ evaluation

    def _evaluate_and_select(self, preemption: PreemptionFlag) -> None:
        """Validate, export the best model and checkpoint. A signal stops the evaluation early: the checkpoint
        then records it as pending (a resumed run evaluates first) and :class:`Preempted` is raised."""
        self._sync_batchnorm()
        step = self.engine.global_steps
        log.info("%s: evaluating at step %d", self.run.name, step)
        self.pending_evaluation = True
        predictions = predict_clips(self.engine.module, self.val_sets, self.cfg.data, self.spec, self.dist, self.dtype,
                                    self.cfg.train.channels_last, self.cfg.train.sample_images,
                                    stop=lambda: preemption.received is not None)
        if predictions is None:
            self._save()
            raise Preempted(f"{self.run.name}: stopped by signal during the evaluation at step {step}; checkpoint "
                            "saved (the resumed run evaluates first)")
        self.pending_evaluation = False
        metrics = predictions.metrics(self.cfg.train.threshold, self.cfg.train.confident_min_clips,
                                      self.cfg.eval.face_aggregation)
        last = self.cfg.train.selection_metric == "last"  # keep the latest model, record its video AUC
        name = "video_mean_auc" if last else self.cfg.train.selection_metric
        if name not in metrics:
            raise KeyError(f"train.selection_metric: {name!r} is not a metric "
                           f"(choose from {', '.join(sorted(metrics))}, or last)")
        value = metrics[name]
        improved = last or (not math.isnan(value) and value > self.best_metric)
        if improved:
            self.best_metric, self.best_step = value, step
        record = {"step": step, "epoch": self.epoch, "split": "val", **metrics}
        self.monitor.evaluation(record, predictions.labels, predictions.probs, predictions.samples, step, "val")
        if self.dist.is_main:
            log.info("%s: step %d val %s=%.4f (%s %.4f at step %d)", self.run.name, step, name, value,
                     "kept" if last else "best", self.best_metric, self.best_step)
        if improved and self.dist.is_main:
            export_model(self.engine.module, self.run.run_dir / "best", specialist=self.run.specialist,
                         stage=self.run.stage_id, step=step, metric=name, value=value,
                         threshold=self.cfg.train.threshold)
        self._save(best=improved)
