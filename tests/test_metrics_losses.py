"""Metrics, video-level aggregation, losses and the learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interceptor.metrics import (aggregate_videos, binary_metrics, clip_and_video_metrics, confident_strategy,
                                 equal_error_rate, log_loss, roc_auc)
from interceptor.train.losses import FocalLoss, build_loss, class_weights
from interceptor.train.schedule import warmup_cosine_factor


def test_auc_and_eer_on_known_scores():
    labels = [0, 0, 0, 1, 1, 1]
    assert roc_auc(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 1.0
    assert equal_error_rate(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 0.0
    assert roc_auc(labels, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]) == 0.0
    # one swapped pair out of nine
    assert roc_auc(labels, [0.1, 0.2, 0.75, 0.7, 0.8, 0.9]) == pytest.approx(8 / 9)
    assert equal_error_rate(labels, [0.1, 0.2, 0.75, 0.7, 0.8, 0.9]) == pytest.approx(1 / 3)


def test_undefined_metrics_are_nan_not_errors():
    out = binary_metrics([1, 1], [0.2, 0.9])
    assert math.isnan(out["auc"]) and math.isnan(out["eer"]) and math.isnan(out["accuracy_real"])
    assert out["accuracy_fake"] == 0.5 and out["count"] == 2


def test_log_loss_and_per_class_accuracy():
    assert log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    out = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.9, 0.4])
    assert out["accuracy"] == 0.5 and out["accuracy_real"] == 0.5 and out["accuracy_fake"] == 0.5
    assert out["f1"] == pytest.approx(0.5)


def test_confident_strategy_matches_the_dfdc_winner():
    many_fake = [0.95] * 20 + [0.1] * 12
    assert confident_strategy(many_fake) == pytest.approx(0.95)  # 20 > 32 // 2.5 and 20 > 11
    assert confident_strategy([0.05] * 30 + [0.5] * 2) == pytest.approx(0.05)  # >90% confidently real
    mixed = [0.9] * 5 + [0.5] * 5
    assert confident_strategy(mixed) == pytest.approx(np.mean(mixed))  # too few confident clips
    assert confident_strategy([0.9, 0.9, 0.9, 0.1], min_confident=2) == pytest.approx(0.9)


def test_video_aggregation_groups_by_video():
    ids, labels, scores = aggregate_videos(["b", "a", "b", "a"], [1, 0, 1, 0], [0.8, 0.2, 0.6, 0.4])
    assert ids == ["a", "b"] and labels.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.3, 0.7])
    with pytest.raises(ValueError, match="different labels"):
        aggregate_videos(["a", "a"], [0, 1], [0.1, 0.2])
    flat = clip_and_video_metrics(["a", "a", "b", "b"], [0, 0, 1, 1], [0.1, 0.4, 0.6, 0.9])
    assert flat["video_mean_auc"] == 1.0 and flat["clip_count"] == 4 and flat["video_confident_count"] == 2


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero():
    logits, target = torch.randn(16, 2), torch.randint(0, 2, (16,))
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-5)
    # focusing: confident correct samples contribute less
    assert FocalLoss(gamma=2.0)(logits, target).item() < ce.item()


def test_class_weights_come_from_counts():
    weights = class_weights([100, 300])
    assert weights.tolist() == pytest.approx([2.0, 2 / 3])
    loss = build_loss("weighted_ce", class_counts=[100, 300])
    assert loss.weight.tolist() == pytest.approx([2.0, 2 / 3])
    with pytest.raises(ValueError, match="needs class counts"):
        build_loss("weighted_ce")
    with pytest.raises(ValueError, match="every class"):
        class_weights([0, 5])
    with pytest.raises(ValueError, match="train.loss"):
        build_loss("hinge")


def test_balance_by_loss_weights_every_loss_and_the_stream_weights_none():
    counts, logits, target = (30, 10), torch.randn(16, 2), torch.tensor([0] * 12 + [1] * 4)
    focal = build_loss("focal", counts, focal_gamma=2.0, balance="loss")
    assert isinstance(focal, FocalLoss) and focal.weight.tolist() == pytest.approx(class_weights(counts).tolist())
    per_sample = FocalLoss(gamma=2.0)(logits[:1], target[:1])  # one sample: the weight cancels out
    assert focal(logits[:1], target[:1]).item() == pytest.approx(per_sample.item())
    weights = class_weights(counts)[target]
    unweighted = torch.stack([FocalLoss(gamma=2.0)(logits[i:i + 1], target[i:i + 1]) for i in range(16)])
    assert focal(logits, target).item() == pytest.approx(((unweighted * weights).sum() / weights.sum()).item())
    ce = build_loss("ce", counts, balance="loss")
    assert ce.weight.tolist() == pytest.approx(class_weights(counts).tolist())
    for name in ("ce", "focal"):
        assert build_loss(name, counts, balance="stream").weight is None
    assert build_loss("weighted_ce", counts, balance="stream").weight is not None
    with pytest.raises(ValueError, match="train.loss=focal with data.balance=loss needs class counts"):
        build_loss("focal", balance="loss")


def test_warmup_then_cosine():
    factors = [warmup_cosine_factor(s, warmup_steps=10, total_steps=110, min_lr_ratio=0.1) for s in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10]))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine_factor(500, 10, 110, 0.1) == pytest.approx(0.1)
