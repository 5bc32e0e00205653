"""The agent: weighted votes, routing around missing inputs, and fitted weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interceptor.agent import Agent, fit_agent
from interceptor.metrics import roc_auc


def test_vote_leaves_out_missing_inputs_and_renormalises():
    agent = Agent("fixed", {"cm": 2.0, "tm": 1.0, "av": 1.0})
    p_all, used_all = agent.vote({"cm": 0.9, "tm": 0.9, "av": 0.9})
    assert p_all == pytest.approx(0.9) and used_all == pytest.approx({"cm": 0.5, "tm": 0.25, "av": 0.25})
    p, used = agent.vote({"cm": 0.9, "tm": 0.6, "av": None})
    assert set(used) == {"cm", "tm"} and used["cm"] == pytest.approx(2 / 3)
    # Missing AV is not a vote for "real": the result equals the vote of the other two alone.
    assert p == pytest.approx(Agent("fixed", {"cm": 2.0, "tm": 1.0}).vote({"cm": 0.9, "tm": 0.6})[0])
    assert p > 0.75
    with pytest.raises(ValueError, match="no specialist"):
        Agent("fixed", {"av": 1.0}).vote({"av": None})


def test_vote_many_matches_vote():
    agent = Agent("stacking", {"a": 0.7, "b": 0.3}, bias=-0.2, scale=1.5)
    table = {"a": np.array([0.9, 0.2, 0.6]), "b": np.array([0.8, np.nan, 0.1])}
    many = agent.vote_many(table)
    for i in range(3):
        one, _ = agent.vote({s: (None if np.isnan(v[i]) else v[i]) for s, v in table.items()})
        assert many[i] == pytest.approx(one)


def synthetic_validation(n=400, seed=0):
    """Two useful specialists, one noise; 'av' missing for half the videos."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    good = 1 / (1 + np.exp(-(1.5 * (labels - 0.5) * 2 + rng.normal(0, 1, n))))
    fair = 1 / (1 + np.exp(-(0.5 * (labels - 0.5) * 2 + rng.normal(0, 1, n))))
    noise = rng.uniform(0.05, 0.95, n)
    av = np.where(np.arange(n) % 2 == 0, good, np.nan)
    return {"cm": good, "rr": fair, "bg": noise, "av": av}, labels


@pytest.mark.parametrize("method", ["fixed", "auc", "stacking"])
def test_fitted_agents_report_calibration(method):
    table, labels = synthetic_validation()
    agent = fit_agent(table, labels, method, fixed_weights={"cm": 2.0, "rr": 1.0, "bg": 1.0, "av": 1.0})
    assert agent.validation["videos"] == len(labels)
    assert 0 < agent.validation["log_loss"] < math.log(2)
    assert agent.validation["auc"] > 0.85
    assert set(agent.weights) == set(table)


def test_weights_follow_validation_quality():
    table, labels = synthetic_validation()
    auc = fit_agent(table, labels, "auc")
    assert auc.weights["cm"] == pytest.approx(roc_auc(labels, table["cm"]))
    stacked = fit_agent(table, labels, "stacking")
    assert stacked.weights["cm"] > stacked.weights["rr"] > stacked.weights["bg"]
    equal = {s: 1.0 for s in table}
    assert stacked.validation["log_loss"] <= fit_agent(table, labels, "fixed", equal).validation["log_loss"] + 1e-6
    assert fit_agent(table, labels, "fixed", {**equal, "cm": 2.0}).weights == {"cm": 2.0, "rr": 1.0, "bg": 1.0,
                                                                               "av": 1.0}


def test_agent_round_trips_through_json(tmp_path):
    table, labels = synthetic_validation()
    agent = fit_agent(table, labels, "stacking")
    agent.save(tmp_path / "agent.json")
    again = Agent.load(tmp_path / "agent.json")
    assert np.allclose(again.vote_many(table), agent.vote_many(table))


def test_a_fixed_vote_needs_a_weight_for_every_specialist():
    table, labels = synthetic_validation()
    with pytest.raises(ValueError, match="no fixed weight for rr, bg, av"):
        fit_agent(table, labels, "fixed", fixed_weights={"cm": 2.0})
