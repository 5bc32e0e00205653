"""The specialization matrices of ``interceptor eval`` (all and pure) on a small fixed set of scored videos, AUCs and
their DeLong intervals counted by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from interceptor.evaluation import (ALL_FAKES, VideoScores, family_lookup, own_family_ranks, specialization_matrix,
                                    specialization_table)
from interceptor.metrics import auc_interval
from interceptor.report import heatmap_plot

NAN = math.nan


def scored_splits() -> dict[str, VideoScores]:
    """Split A: reals r1 r2, fakes f1 (LL) and f2 (LL, CM); split B: real r3, fake f3 (CM), no AV input there."""
    a = VideoScores(["ffpp-test-original-r1", "ffpp-test-original-r2", "ffpp-test-Deepfakes-f1",
                     "ffpp-test-FaceSwap-f2"], np.array([0, 0, 1, 1]),
                    ["ffpp:r1.mp4", "ffpp:r2.mp4", "ffpp:f1.mp4", "ffpp:f2.mp4"],
                    {"ll": np.array([0.1, 0.4, 0.3, 0.9]), "av": np.array([0.5, 0.6, 0.7, 0.2])})
    b = VideoScores(["dfdc-test-original-r3", "dfdc-test-dfdc-f3"], np.array([0, 1]), ["dfdc:r3.mp4", "dfdc:f3.mp4"],
                    {"ll": np.array([0.2, 0.35]), "av": np.array([NAN, NAN])})
    return {"ffpp/test": a, "dfdc/chunk-*/test": b}


FAMILIES = {"ffpp:f1.mp4": ["LL"], "ffpp:f2.mp4": ["CM", "LL"], "dfdc:f3.mp4": ["CM"]}


def test_cells_are_family_fakes_against_the_reals_of_their_splits():
    matrix = specialization_matrix(scored_splits(), lambda source, method: FAMILIES[source])
    assert matrix["columns"] == ["LL", "CM", ALL_FAKES]  # specialist order, then all fakes
    ll, av = matrix["rows"]["ll"], matrix["rows"]["av"]
    # LL: fakes f1 .3, f2 .9 (split A) against A's reals .1 .4: 3 of 4 pairs ranked right.
    assert counts(ll["LL"]) == (pytest.approx(3 / 4), 2, 2)
    # CM: fakes f2 .9 (A), f3 .35 (B) against every real of A and B (.1 .4 .2): 3 + 2 of 6.
    assert counts(ll["CM"]) == (pytest.approx(5 / 6), 2, 3)
    # All fakes .3 .9 .35 against .1 .4 .2: 2 + 3 + 2 of 9.
    assert counts(ll[ALL_FAKES]) == (pytest.approx(7 / 9), 3, 3)
    # AV has no input in split B: only A's videos count. LL: .7 beats .5 and .6, .2 neither.
    assert counts(av["LL"]) == (pytest.approx(2 / 4), 2, 2)
    assert counts(av["CM"]) == (pytest.approx(0.0), 1, 2)
    # One fake: no interval (a variance needs two videos of each class).
    assert av["CM"]["low"] is None and av["CM"]["high"] is None
    # LL on LL: the DeLong interval of fakes .3 .9 against reals .1 .4 (by hand below).
    assert (ll["LL"]["low"], ll["LL"]["high"]) == (pytest.approx(0.75 - 1.959964 * 0.125 ** 0.5), 1.0)


def counts(cell: dict) -> tuple:
    return cell["auc"], cell["fakes"], cell["reals"]


def test_delong_interval_by_hand():
    # Fakes .3 .9, reals .1 .4. Per fake, the share of reals below it: .5, 1; per real, the share of fakes above
    # it: 1, .5. Both have variance .125 (n - 1 = 1), so the AUC's variance is .125 / 2 + .125 / 2.
    auc, low, high = auc_interval([1, 1, 0, 0], [0.3, 0.9, 0.1, 0.4])
    assert auc == pytest.approx(0.75)
    assert low == pytest.approx(0.75 - 1.959964 * 0.125 ** 0.5, abs=1e-6) and high == 1.0
    # Ties count half: fakes .5 .5, reals .5 .2: components .75 .75 (variance 0) and .5 1 (variance .125), AUC .75.
    auc, low, high = auc_interval([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.2])
    assert auc == pytest.approx(0.75)
    assert (low, high) == (pytest.approx(0.75 - 1.959964 * (0.125 / 2) ** 0.5, abs=1e-6), 1.0)
    # A perfect separation has no spread; one class has no AUC.
    assert auc_interval([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in auc_interval([0, 0], [0.1, 0.2]))


def test_delong_interval_covers_like_a_bootstrap():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(20), np.zeros(40)].astype(int)
    scores = rng.normal(size=60) + labels
    auc, low, high = auc_interval(labels, scores)
    boot = []
    for _ in range(2000):
        pick = np.r_[rng.choice(20, 20), 20 + rng.choice(40, 40)]
        boot.append(auc_interval(labels[pick], scores[pick])[0])
    assert np.percentile(boot, [2.5, 97.5]) == pytest.approx([low, high], abs=0.02)


def test_the_pure_matrix_counts_single_family_fakes_only():
    pure = specialization_matrix(scored_splits(), lambda source, method: FAMILIES[source], pure=True)
    assert pure["pure"] and pure["columns"] == ["LL", "CM"]  # no all-fakes column
    ll = pure["rows"]["ll"]
    # LL alone: f1 .3 (f2 also carries CM) against A's reals .1 .4: 1 of 2.
    assert counts(ll["LL"]) == (pytest.approx(1 / 2), 1, 2)
    # CM alone: f3 .35 (split B) against B's real .2 only.
    assert counts(ll["CM"]) == (pytest.approx(1.0), 1, 1)
    ranks = own_family_ranks(pure)
    assert set(ranks) == {"ll"}  # AV has no column of its own here; the agent is no specialist
    assert ranks["ll"] == {"own_auc": pytest.approx(0.5), "highest": "CM", "own_is_highest": False}
    table = specialization_table(pure)
    assert "| LL | *0.500 (1/2)* | 1.000 (1/1) |" in table


def test_without_a_manifest_the_method_is_the_family(tmp_path):
    matrix = specialization_matrix(scored_splits(), family_lookup(None))
    assert matrix["columns"] == ["Deepfakes", "FaceSwap", "dfdc", ALL_FAKES]
    # Deepfakes: f1 .3 against A's reals .1 .4.
    assert matrix["rows"]["ll"]["Deepfakes"]["auc"] == pytest.approx(1 / 2)
    assert counts(matrix["rows"]["av"]["dfdc"]) == (None, 0, 0)
    heatmap = heatmap_plot({s: [c["auc"] for c in cells.values()] for s, cells in matrix["rows"].items()},
                           matrix["columns"], "test", tmp_path / "matrix.png")
    assert heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_families_come_from_the_synthetic_manifest(tmp_path):
    manifest = tmp_path / "synth_manifest.json"
    manifest.write_text(json.dumps({"videos": {"FaceForensics++/f2.mp4": {"families": {"CM": {}, "LL": {}}}}}))
    lookup = family_lookup(manifest)
    assert lookup("ffpp:f2.mp4", "FaceSwap") == ["CM", "LL"]
    with pytest.raises(KeyError, match="no video 'other.mp4'"):
        lookup("ffpp:other.mp4", "FaceSwap")
