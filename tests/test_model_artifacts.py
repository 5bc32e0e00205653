"""The specialist modules see their artifacts: each one, trained briefly on face crops of the synthetic corpus,
separates fakes carrying its artifact family from their originals on held-out videos.

The module is trained alone with a linear read-out of its (C, 7, 7) output; crops are cut with the corpus's
ground-truth boxes (``face_crops``). Held-out videos are whole groups (an original and its fakes), so no test
video shares content with a training one. CM, RR and TM must reach AUC >= 0.9; every family's figure is
printed and stored in the pytest cache under ``models/artifact_auc``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from interceptor.models import get_specialist
from interceptor.schema import ModelConfig

# family: (training steps, batch size, AUC the test requires)
TRAINING = {
    "CM": (300, 16, 0.9),
    "RR": (150, 16, 0.9),
    "TM": (60, 16, 0.9),
    "LL": (200, 16, 0.6),
    "BG": (200, 16, 0.6),
    "AV": (150, 16, 0.6),
}
FRAMES_PER_CLIP = {"frame": (0, 3, 6), "clip": 4}  # frames taken from each 8-frame crop clip


def held_out(group: str) -> bool:
    """About a third of the groups (an original and its fakes), chosen by a stable hash of the original."""
    return zlib.crc32(group.encode()) % 3 == 0


def model_inputs(kind: str, clips: np.ndarray, audio: np.ndarray | None) -> dict[str, torch.Tensor]:
    """A video's crop clips as model inputs: frames for frame models, 4-frame clips for TM, clips+audio for AV."""
    x = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255  # (clips, 8, 3, H, W)
    if kind == "frame":
        return {"image": x[:, list(FRAMES_PER_CLIP["frame"])].flatten(0, 1)}
    if kind == "clip":
        t = FRAMES_PER_CLIP["clip"]
        return {"clip": torch.cat([x[:, :t], x[:, t:2 * t]])}
    return {"clip": x, "audio": torch.from_numpy(audio), "audio_mask": torch.ones(len(x))}


def artifact_dataset(family: str, kind: str, manifest: dict, face_clips: dict) -> dict[str, dict]:
    """Train and test sets: fakes carrying ``family`` (label 1) against their originals (label 0).

    AV has few such fakes; its negatives are all videos with audio in sync (originals and fakes of visual
    families only), the distinction its module is for.
    """
    fakes = [p for p, e in manifest.items() if e["label"] == 1 and family in e["families"]]
    if family == "AV":
        negatives = [p for p, e in manifest.items() if e["has_audio"] and "AV" not in e["families"]]
    else:
        negatives = sorted({manifest[p]["original"] for p in fakes})
    sets: dict[str, dict] = {"train": {}, "test": {}}
    for path in fakes + negatives:
        group = manifest[path]["original"] or path
        inputs = model_inputs(kind, *face_clips[path])
        n = len(next(iter(inputs.values())))
        inputs["label"] = torch.full((n,), int(family in manifest[path]["families"]))
        target = sets["test" if held_out(group) else "train"]
        for key, value in inputs.items():
            target.setdefault(key, []).append(value)
    return {split: {k: torch.cat(v) for k, v in data.items()} for split, data in sets.items()}


def train_and_score(family: str, steps: int, batch_size: int, manifest: dict, face_clips: dict) -> float:
    torch.manual_seed(0)
    module = get_specialist(family)(ModelConfig())
    data = artifact_dataset(family, module.input_kind, manifest, face_clips)
    train, test = data["train"], data["test"]
    assert 0 < test["label"].sum() < len(test["label"]), "held-out set needs fakes and originals"
    names = [k for k in train if k != "label"]
    readout = nn.Linear(module.features, 2)
    net = nn.ModuleList([module, readout])
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(train["label"]), (batch_size,), generator=generator)
        logits = readout(module(**{k: train[k][idx] for k in names}).flatten(1))
        loss = nn.functional.cross_entropy(logits, train["label"][idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        scores = torch.cat([readout(module(**{k: test[k][i:i + 64] for k in names}).flatten(1)).softmax(-1)[:, 1]
                            for i in range(0, len(test["label"]), 64)])
    return float(roc_auc_score(test["label"].numpy(), scores.numpy()))


@pytest.mark.parametrize("family", list(TRAINING))
def test_module_separates_its_artifact(family, corpus_manifest, corpus_face_clips, request):
    steps, batch_size, required = TRAINING[family]
    auc = train_and_score(family, steps, batch_size, corpus_manifest, corpus_face_clips)
    figures = request.config.cache.get("models/artifact_auc", {})
    request.config.cache.set("models/artifact_auc", {**figures, family: round(auc, 4)})
    print(f"{family}: held-out AUC {auc:.3f}")
    if required is not None:
        assert auc >= required, f"{family} module separates its artifact with AUC {auc:.3f} < {required}"
