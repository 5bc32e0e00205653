"""The specialization matrix of ``interceptor eval`` on a small fixed set of scored videos, AUCs counted by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from interceptor.evaluation import ALL_FAKES, VideoScores, family_lookup, specialization_matrix
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
    assert ll["LL"] == {"auc": pytest.approx(3 / 4), "fakes": 2, "reals": 2}
    # CM: fakes f2 .9 (A), f3 .35 (B) against every real of A and B (.1 .4 .2): 3 + 2 of 6.
    assert ll["CM"] == {"auc": pytest.approx(5 / 6), "fakes": 2, "reals": 3}
    # All fakes .3 .9 .35 against .1 .4 .2: 2 + 3 + 2 of 9.
    assert ll[ALL_FAKES] == {"auc": pytest.approx(7 / 9), "fakes": 3, "reals": 3}
    # AV has no input in split B: only A's videos count. LL: .7 beats .5 and .6, .2 neither.
    assert av["LL"] == {"auc": pytest.approx(2 / 4), "fakes": 2, "reals": 2}
    assert av["CM"] == {"auc": pytest.approx(0.0), "fakes": 1, "reals": 2}


def test_without_a_manifest_the_method_is_the_family(tmp_path):
    matrix = specialization_matrix(scored_splits(), family_lookup(None))
    assert matrix["columns"] == ["Deepfakes", "FaceSwap", "dfdc", ALL_FAKES]
    # Deepfakes: f1 .3 against A's reals .1 .4.
    assert matrix["rows"]["ll"]["Deepfakes"]["auc"] == pytest.approx(1 / 2)
    assert matrix["rows"]["av"]["dfdc"] == {"auc": None, "fakes": 0, "reals": 0}
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
