"""The agent: a weighted vote of the specialists' per-video fake probabilities.

Weights are fixed (each specialist's declared ``vote_weight``: CM 2.0, the others 1.0; ``agent.fixed_weights``
overrides them), proportional to each
specialist's validation AUC, or fitted by logistic-regression stacking on validation. A specialist whose
input is missing for a video (AV without an audio track) is left out of that video's vote and the weights of
the others are renormalised: a missing input never counts as "real".

The vote averages the specialists' logits with the weights, plus a bias for stacking:
``P(fake) = sigmoid(bias + scale * sum_s w_s logit(p_s) / sum_s w_s)`` over the available specialists, so
fixed and AUC weights give a weighted (geometric) vote and stacking is the fitted logistic regression.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from interceptor.metrics import log_loss, roc_auc
from interceptor.utils import atomic_write_json

EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Agent:
    """Fitted ensemble weights; serialisable to ``agent.json``."""

    method: str  # "fixed", "auc" or "stacking"
    weights: dict[str, float]
    bias: float = 0.0
    scale: float = 1.0
    threshold: float = 0.5
    validation: dict | None = None  # what the weights were fitted on, and the calibration there

    def vote(self, probs: Mapping[str, float | None]) -> tuple[float, dict[str, float]]:
        """P(fake) of one video from the specialists' probabilities (None or absent = input missing).

        Returns the probability and the renormalised weights actually used.
        """
        used = {s: w for s, w in self.weights.items() if probs.get(s) is not None and w > 0}
        if not used:
            raise ValueError(f"no specialist with a positive weight has an input here (weights {self.weights})")
        total = sum(used.values())
        z = sum(w * float(logit(probs[s])) for s, w in used.items()) / total
        p = 1 / (1 + math.exp(-(self.bias + self.scale * z)))
        return p, {s: w / total for s, w in used.items()}

    def vote_many(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`vote` over aligned arrays of probabilities (NaN = input missing)."""
        n = len(next(iter(table.values())))
        num, den = np.zeros(n), np.zeros(n)
        for spec, weight in self.weights.items():
            if weight <= 0 or spec not in table:
                continue
            p = np.asarray(table[spec], dtype=np.float64)
            present = ~np.isnan(p)
            num[present] += weight * logit(p[present])
            den[present] += weight
        if (den == 0).any():
            raise ValueError("some videos have no specialist with an input and a positive weight")
        return 1 / (1 + np.exp(-(self.bias + self.scale * num / den)))

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        return cls(**json.loads(Path(path).read_text()))


def fit_agent(table: Mapping[str, np.ndarray], labels: np.ndarray, method: str,
              fixed_weights: Mapping[str, float] | None = None, threshold: float = 0.5) -> Agent:
    """Fit the vote on validation videos: ``table`` maps specialist -> P(fake) per video (NaN = missing)."""
    labels = np.asarray(labels, dtype=np.int64)
    specialists = list(table)
    aucs = {}
    for s in specialists:
        present = ~np.isnan(table[s])
        aucs[s] = roc_auc(labels[present], table[s][present]) if present.any() else math.nan
    if method == "fixed":
        missing = [s for s in specialists if s not in (fixed_weights or {})]
        if missing:
            raise ValueError(f"agent.method=fixed: no fixed weight for {', '.join(missing)}")
        weights = {s: float(fixed_weights[s]) for s in specialists}
        agent = Agent("fixed", weights, threshold=threshold)
    elif method == "auc":
        weights = {s: (0.0 if math.isnan(a) else float(a)) for s, a in aucs.items()}
        agent = Agent("auc", weights, threshold=threshold)
    elif method == "stacking":
        agent = _stack(table, labels, specialists, threshold)
    else:
        raise ValueError(f"agent.method: unknown method {method!r} (fixed, auc, stacking)")
    scores = agent.vote_many(table)
    agent.validation = {"videos": int(len(labels)), "specialist_auc": aucs, "auc": roc_auc(labels, scores),
                        "log_loss": log_loss(labels, scores)}
    return agent


def _stack(table: Mapping[str, np.ndarray], labels: np.ndarray, specialists: list[str], threshold: float) -> Agent:
    """Logistic regression on the vote itself: fit weights (softmax, non-negative), bias and scale by log loss.

    The fitted model is exactly the one :meth:`Agent.vote` applies, missing inputs renormalised included,
    so videos without audio neither help nor hurt AV's weight.
    """
    from scipy.optimize import minimize

    k = len(specialists)
    present = np.stack([~np.isnan(table[s]) for s in specialists], axis=1).astype(np.float64)
    z = np.stack([logit(np.where(np.isnan(table[s]), 0.5, table[s])) for s in specialists], axis=1) * present
    y = labels.astype(np.float64)

    def objective(params: np.ndarray) -> float:
        theta, bias, log_scale = params[:k], params[k], params[k + 1]
        w = np.exp(theta - theta.max())
        w /= w.sum()
        scale = np.exp(log_scale)
        f = bias + scale * (z @ w) / np.maximum(present @ w, 1e-12)
        # L2 on the effective coefficients scale * w, as scikit-learn's LogisticRegression(C=1) does.
        ridge = 0.5 * scale**2 * np.sum(w**2) / len(y)
        return float(np.mean(np.logaddexp(0, f) - y * f) + ridge + 1e-4 * np.sum(theta**2))

    result = minimize(objective, np.zeros(k + 2), method="L-BFGS-B", bounds=[(-20, 20)] * k + [(-20, 20), (-5, 5)])
    theta = result.x[:k]
    w = np.exp(theta - theta.max())
    w /= w.sum()
    return Agent("stacking", {s: float(v) for s, v in zip(specialists, w)}, bias=float(result.x[k]),
                 scale=float(np.exp(result.x[k + 1])), threshold=threshold)
