"""Binary detection metrics at clip and video level (label 1 = fake, scores = P(fake)).

Shared by the trainer's evaluations, the evaluation reports and the ensemble. Metrics that are undefined for
the data (AUC with one class present) are NaN rather than an exception, so a tiny split never crashes a run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm

EPS = 1e-7
CONFIDENCE = 0.95  # level of the AUC intervals the reports carry


def _both_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and labels.min() != labels.max()


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    return float(skm.roc_auc_score(labels, scores)) if _both_classes(labels) else math.nan


def auc_interval(labels: Sequence[int], scores: Sequence[float],
                 level: float = CONFIDENCE) -> tuple[float, float, float]:
    """ROC-AUC and its ``level`` confidence interval by DeLong's method (DeLong, DeLong and Clarke-Pearson,
    Biometrics 1988): the AUC's variance from the structural components of the fakes and the reals (midranks,
    O(n log n)), a normal interval clipped to [0, 1]. (NaN, NaN, NaN) with one class; the interval is NaN with
    fewer than two videos of a class, and collapses to a point when the classes separate perfectly."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if not _both_classes(labels):
        return math.nan, math.nan, math.nan
    fakes, reals = scores[labels == 1], scores[labels == 0]
    m, n = len(fakes), len(reals)
    ranks = stats.rankdata(np.concatenate([fakes, reals]))
    fake_components = (ranks[:m] - stats.rankdata(fakes)) / n  # per fake: share of reals ranked below it
    real_components = 1 - (ranks[m:] - stats.rankdata(reals)) / m  # per real: share of fakes ranked above it
    auc = float(fake_components.mean())
    if m < 2 or n < 2:
        return auc, math.nan, math.nan
    spread = math.sqrt(fake_components.var(ddof=1) / m + real_components.var(ddof=1) / n)
    z = float(stats.norm.ppf(0.5 + level / 2))
    return auc, max(0.0, auc - z * spread), min(1.0, auc + z * spread)


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    return float(skm.average_precision_score(labels, scores)) if _both_classes(labels) else math.nan


def log_loss(labels: Sequence[int], scores: Sequence[float]) -> float:
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(scores, dtype=np.float64), EPS, 1 - EPS)
    if labels.size == 0:
        return math.nan
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The error rate where the false-positive rate equals the false-negative rate."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if not _both_classes(labels):
        return math.nan
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, per-class accuracy, F1, ROC-AUC, average precision, log loss and EER."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = (scores >= threshold).astype(np.int64)
    out = {"count": int(labels.size), "count_real": int((labels == 0).sum()), "count_fake": int((labels == 1).sum())}
    out["accuracy"] = float((predicted == labels).mean()) if labels.size else math.nan
    for name, cls in (("real", 0), ("fake", 1)):
        chosen = labels == cls
        out[f"accuracy_{name}"] = float((predicted[chosen] == cls).mean()) if chosen.any() else math.nan
    out["f1"] = float(skm.f1_score(labels, predicted, zero_division=0)) if labels.size else math.nan
    out["auc"] = roc_auc(labels, scores)
    out["ap"] = average_precision(labels, scores)
    out["log_loss"] = log_loss(labels, scores)
    out["eer"] = equal_error_rate(labels, scores)
    return out


# ------------------------------------------------------------------------------------------------ video level


def confident_strategy(probs: Sequence[float], threshold: float = 0.8, min_confident: int = 11) -> float:
    """Aggregate clip probabilities as the DFDC winner (Seferbekov) did.

    If more than ``min_confident`` clips (and more than 40% of them) are confidently fake, average those; if
    over 90% are confidently real, average those; otherwise the plain mean. The original used 32 frames per
    video and ``min_confident`` = 11; with few clips per video lower it.
    """
    p = np.asarray(probs, dtype=np.float64)
    confident_fake = p > threshold
    n_fake = int(confident_fake.sum())
    if n_fake > len(p) // 2.5 and n_fake > min_confident:
        return float(p[confident_fake].mean())
    confident_real = p < 1 - threshold
    if confident_real.sum() > 0.9 * len(p):
        return float(p[confident_real].mean())
    return float(p.mean())


def aggregate_faces(scores: Sequence[float], how: str = "max") -> float:
    """A video's P(fake) from its faces': the most suspicious face's (``max``) or their ``mean``."""
    if how == "max":
        return float(np.max(scores))
    if how == "mean":
        return float(np.mean(scores))
    raise ValueError(f"unknown face aggregation {how!r} (max, mean)")


def aggregate_videos(video_ids: Iterable[str], labels: Iterable[int], probs: Iterable[float],
                     strategy: str = "mean", face_ids: Iterable[str] | None = None, face_aggregation: str = "max",
                     **strategy_args) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group clip probabilities by video id; returns (ids, labels, video probabilities) sorted by id.

    With ``face_ids`` (the face each clip follows), clips are first grouped by face (``strategy``), then a video's
    faces by :func:`aggregate_faces`; the video is fake when any of its faces is. A face's clips must agree on
    the label (they come from one face of one file); a disagreement is an error.
    """
    video_ids = list(video_ids)
    face_ids = list(face_ids) if face_ids is not None else video_ids
    grouped: dict[str, list[float]] = defaultdict(list)
    face_label: dict[str, int] = {}
    video_of: dict[str, str] = {}
    for face, vid, label, prob in zip(face_ids, video_ids, labels, probs):
        grouped[face].append(float(prob))
        video_of[face] = vid
        if face_label.setdefault(face, int(label)) != int(label):
            raise ValueError(f"video {face!r} has clips with different labels")
    if strategy == "mean":
        face_score = {f: float(np.mean(p)) for f, p in grouped.items()}
    elif strategy == "confident":
        face_score = {f: confident_strategy(p, **strategy_args) for f, p in grouped.items()}
    else:
        raise ValueError(f"unknown video aggregation strategy {strategy!r} (mean, confident)")
    faces_of: dict[str, list[str]] = defaultdict(list)
    for face in sorted(grouped):
        faces_of[video_of[face]].append(face)
    ids = sorted(faces_of)
    return (ids, np.asarray([max(face_label[f] for f in faces_of[v]) for v in ids]),
            np.asarray([aggregate_faces([face_score[f] for f in faces_of[v]], face_aggregation) for v in ids]))


def clip_and_video_metrics(video_ids: Sequence[str], labels: Sequence[int], probs: Sequence[float],
                           threshold: float = 0.5, confident_args: dict | None = None,
                           face_ids: Sequence[str] | None = None, face_aggregation: str = "max") -> dict[str, float]:
    """Flat metric dict: ``clip_*``, ``video_mean_*`` and ``video_confident_*`` keys (videos: their faces
    aggregated as :func:`aggregate_videos` does)."""
    out = {f"clip_{k}": v for k, v in binary_metrics(labels, probs, threshold).items()}
    for strategy in ("mean", "confident"):
        args = (confident_args or {}) if strategy == "confident" else {}
        _, v_labels, v_probs = aggregate_videos(video_ids, labels, probs, strategy, face_ids, face_aggregation,
                                                **args)
        out.update({f"video_{strategy}_{k}": v for k, v in binary_metrics(v_labels, v_probs, threshold).items()})
    return out
