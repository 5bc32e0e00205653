"""The DeepSpeed engine: config from ``configs/deepspeed/*.json`` plus the typed training config."""

from __future__ import annotations

import copy
import json
import logging

import torch
from torch import nn

from interceptor.config import ConfigError, resolve_path
from interceptor.schema import Config
from interceptor.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is FP16 (dynamic loss scaling) on GPU and fp32 on CPU; FP16 on CPU is a config error."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 training needs a GPU; on CPU use train.precision=bf16 or fp32")
    return precision


def deepspeed_config(cfg: Config, precision: str) -> dict:
    """The engine config: the JSON file's settings with the typed config's values filled in."""
    path = resolve_path(cfg.train.deepspeed_config)
    try:
        base = json.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"train.deepspeed_config: cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"train.deepspeed_config: {path} is not valid JSON: {err}") from None
    if cfg.train.zero_stage not in (0, 1, 2):
        raise ConfigError(f"train.zero_stage: expected 0, 1 or 2, got {cfg.train.zero_stage}")
    ds = {k: copy.deepcopy(v) for k, v in base.items() if not k.startswith("_")}
    ds["train_micro_batch_size_per_gpu"] = cfg.data.batch_size
    ds["gradient_accumulation_steps"] = cfg.train.grad_accum
    ds["gradient_clipping"] = cfg.train.grad_clip
    ds["fp16"] = {**ds.get("fp16", {}), "enabled": precision == "fp16"}
    ds["bf16"] = {**ds.get("bf16", {}), "enabled": precision == "bf16"}
    ds["zero_optimization"] = {**ds.get("zero_optimization", {}), "stage": cfg.train.zero_stage}
    return ds


def build_engine(model: nn.Module, cfg: Config, precision: str, total_steps: int):
    """A DeepSpeed engine around ``model`` with AdamW (no weight decay on norms and biases) and warm-up+cosine."""
    import deepspeed
    from timm.optim import create_optimizer_v2

    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                    betas=tuple(cfg.train.betas))
    warmup = min(cfg.train.warmup_steps, total_steps // 10)
    scheduler = warmup_cosine(optimizer, warmup, total_steps, cfg.train.min_lr_ratio)
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                           config=deepspeed_config(cfg, precision))
    match_norm_statistics(engine.module)
    return engine, optimizer, scheduler


def match_norm_statistics(model: nn.Module) -> None:
    """Give batch-norm running statistics their layer's parameter dtype.

    DeepSpeed casts parameters to fp16/bf16 but keeps buffers in fp32; batch norm needs its running mean and
    variance in the dtype of its weight (the models' fixed filter buffers stay fp32: they run in float32).
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.running_mean is not None \
                and module.weight is not None:
            module.running_mean.data = module.running_mean.data.to(module.weight.dtype)
            module.running_var.data = module.running_var.data.to(module.weight.dtype)


def loss_scale(engine) -> float:
    """The current dynamic loss scale (1.0 when not training in FP16)."""
    optimizer = engine.optimizer
    for attr in ("cur_scale", "loss_scale"):
        value = getattr(optimizer, attr, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 1.0
