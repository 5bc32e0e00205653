"""``interceptor eval``: video-level reports for the specialists and the agent, with plots.

    interceptor eval --models MODELS --shards SHARDS [--splits ffpp/test,...] --out REPORT

1. Every specialist in MODELS scores the agent's fit sets (validation) and the report splits, video by video
   (a face's score is the mean of its clips' probabilities, a video's its most suspicious face's, or the faces'
   mean: ``eval.face_aggregation``; AV has no input on videos without an audio track).
2. The agent's weights are fitted on validation (``agent.method``) and saved to ``MODELS/agent.json``.
3. For each split: AUC, average precision, log loss, EER, accuracy at the threshold, per-class accuracy and F1
   of every specialist and of the agent, also per manipulation method; ROC curves and the agent's confusion
   matrix as PNG.
4. The specialization matrix: every scorer's AUC on the test fakes of each artifact family (``eval.families``).
5. The cross-dataset matrix training recorded (each stage's best model on the curriculum's eval sets).
6. ``REPORT/report.md`` links it all; ``REPORT/metrics.json`` and ``REPORT/videos.json`` hold the numbers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from interceptor.agent import Agent, fit_agent
from interceptor.metrics import CONFIDENCE, aggregate_videos, auc_interval, binary_metrics
from interceptor.models.export import load_model
from interceptor.models.registry import SPECIALISTS, fixed_vote_weights
from interceptor.models_dir import AGENT_FILE, CROSS_DATASET, model_dirs
from interceptor.report import confusion_plot, fmt, heatmap_plot, markdown_table, roc_plot, write_markdown
from interceptor.scoring import predict_clips
from interceptor.schema import Config
from interceptor.data.shard_sets import DataError, resolve_shard_sets
from interceptor.distributed import DistInfo
from interceptor.inputs import InputSpec
from interceptor.utils import atomic_write_json, read_json

log = logging.getLogger(__name__)

TABLE_METRICS = ("auc", "ap", "log_loss", "eer", "accuracy", "accuracy_real", "accuracy_fake", "f1", "count")


@dataclass
class VideoScores:
    """One split's videos: labels, sources and each scorer's P(fake) (NaN where its input is missing)."""

    videos: list[str]
    labels: np.ndarray
    sources: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def method(self, video: str) -> str:
        """The manipulation method field of a video key (``dataset-split-method-videoid``)."""
        return video.split("-")[2]

    def to_json(self) -> list[dict]:
        return [{"video": v, "label": int(self.labels[i]), "source": self.sources[i],
                 **{name: (None if np.isnan(s[i]) else float(s[i])) for name, s in self.scores.items()}}
                for i, v in enumerate(self.videos)]


def score_videos(model: torch.nn.Module, shard_sets, cfg: Config, dist: DistInfo) -> tuple[list[str], dict]:
    """(video ids, {video: (label, source, P(fake) or NaN without input)}) for one model over shard sets."""
    predictions = predict_clips(model, shard_sets, cfg.data, InputSpec.of(model), dist)
    ids, labels, scores = aggregate_videos(predictions.videos, predictions.labels, predictions.probs,
                                           face_ids=predictions.faces, face_aggregation=cfg.eval.face_aggregation)
    source = dict(zip(predictions.videos, predictions.sources))
    present: dict[str, bool] = {}
    for video, has_input in zip(predictions.videos, predictions.has_input):
        present[video] = present.get(video, True) and has_input
    return ids, {v: (int(label), source[v], float(score) if present[v] else float("nan"))
                 for v, label, score in zip(ids, labels, scores)}


def collect_scores(models: dict[str, torch.nn.Module], shards_root: Path, pattern: str, cfg: Config,
                   dist: DistInfo) -> VideoScores | None:
    """Every model's video scores on the shard sets of ``pattern`` (None when nothing matches)."""
    try:
        shard_sets = resolve_shard_sets(shards_root, [pattern], "eval")
    except DataError:
        log.warning("no shard set matches %s under %s: skipped", pattern, shards_root)
        return None
    table: VideoScores | None = None
    for name, model in models.items():
        videos, scores = score_videos(model, shard_sets, cfg, dist)
        if table is None:
            table = VideoScores(videos, np.array([scores[v][0] for v in videos]), [scores[v][1] for v in videos])
        table.scores[name] = np.array([scores[v][2] for v in videos])
    return table if table is not None and table.videos else None


def split_metrics(table: VideoScores, threshold: float) -> dict[str, dict]:
    """Per scorer: metrics on all videos of the split, and per manipulation method (its fakes vs all reals)."""
    out = {}
    methods = sorted({table.method(v) for v, label in zip(table.videos, table.labels) if label == 1})
    for name, scores in table.scores.items():
        present = ~np.isnan(scores)
        entry = {"all": binary_metrics(table.labels[present], scores[present], threshold)}
        for method in methods:
            chosen = present & np.array([label == 0 or table.method(v) == method
                                         for v, label in zip(table.videos, table.labels)])
            entry[method] = binary_metrics(table.labels[chosen], scores[chosen], threshold)
        out[name] = entry
    return out


def split_protocol(shards_root: Path, pattern: str) -> str | None:
    """The FF++ protocol the shard sets of ``pattern`` were built with (``standard``, ``standard+FaceShifter``...;
    their manifests' ``protocol``), None for other datasets."""
    protocols = {s.protocol for s in resolve_shard_sets(shards_root, [pattern], "eval")}
    return ", ".join(sorted(p for p in protocols if p)) or None


def recorded_cross_dataset(models_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{specialist: {stage: {eval set: video AUC}}}: the cross-dataset matrices training recorded after each stage
    (``train/crossdata.py``), as ``interceptor export`` copied them into the models directory."""
    matrix: dict[str, dict] = {}
    for spec, directory in model_dirs(models_dir).items():
        path = directory / CROSS_DATASET
        if path.is_file():
            rows = read_json(path, "cross-dataset matrix")["rows"]
            matrix[spec] = {stage: {split: cell["video_mean_auc"] for split, cell in row.items()}
                            for stage, row in rows.items()}
    return matrix


def run_eval(models_dir: Path, shards_root: Path, out: Path, cfg: Config, splits: list[str] | None = None,
             device: str | None = None) -> dict:
    """Evaluate, fit and save the agent, write the report; returns the metrics."""
    splits = splits or cfg.eval.splits
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist = DistInfo(0, 1, 0, dev)
    models = {spec: load_model(d).to(dev) for spec, d in model_dirs(models_dir).items()}
    if not models:
        raise FileNotFoundError(f"{models_dir}: no <specialist>_model directories (run `interceptor export` first)")
    log.info("evaluating %s on %s", ", ".join(models), ", ".join(splits))

    fit_tables = [t for t in (collect_scores(models, shards_root, p, cfg, dist) for p in cfg.agent.fit_sets) if t]
    if not fit_tables:
        raise FileNotFoundError(f"no validation shard sets match agent.fit_sets {cfg.agent.fit_sets} under {shards_root}")
    fit_labels = np.concatenate([t.labels for t in fit_tables])
    fit_scores = {s: np.concatenate([t.scores[s] for t in fit_tables]) for s in models}
    agent = fit_agent(fit_scores, fit_labels, cfg.agent.method, fixed_vote_weights(cfg.agent.fixed_weights),
                      cfg.agent.threshold)
    agent.save(models_dir / AGENT_FILE)
    log.info("agent (%s): weights %s, validation AUC %.3f, log loss %.3f", agent.method,
             {s: round(w, 3) for s, w in agent.weights.items()}, agent.validation["auc"], agent.validation["log_loss"])

    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"agent": {"method": agent.method, "weights": agent.weights, "validation": agent.validation},
                     "splits": {}}
    videos: dict[str, list] = {}
    tables: dict[str, VideoScores] = {}
    sections = [("Agent", _agent_section(agent))]
    for split in splits:
        table = collect_scores(models, shards_root, split, cfg, dist)
        if table is None:
            continue
        table.scores["agent"] = agent.vote_many({s: table.scores[s] for s in models})
        name = split.replace("/", "_").replace("*", "all")
        roc = roc_plot({s: (table.labels[~np.isnan(v)], v[~np.isnan(v)]) for s, v in table.scores.items()},
                       f"{split}: video level", out / f"roc_{name}.png")
        confusion = confusion_plot(table.labels, table.scores["agent"], agent.threshold, f"agent on {split}",
                                   out / f"confusion_{name}.png")
        metrics = split_metrics(table, agent.threshold)
        results["splits"][split] = metrics
        videos[split] = table.to_json()
        tables[split] = table
        protocol = split_protocol(shards_root, split)
        if protocol:
            results.setdefault("ffpp_protocol", {})[split] = protocol
        heading = f"{split} ({len(table.videos)} videos{f'; FF++ protocol: {protocol}' if protocol else ''})"
        sections.append((heading, _split_section(metrics, roc.name, confusion.name)))
    lookup = family_lookup(cfg.eval.families)
    matrix = specialization_matrix(tables, lookup)
    pure = specialization_matrix(tables, lookup, pure=True)
    pure["own_family"] = own_family_ranks(pure)
    results["specialization"], results["specialization_pure"] = matrix, pure
    heatmaps = [heatmap_plot({s: [cells[c]["auc"] for c in m["columns"]] for s, cells in m["rows"].items()},
                             m["columns"], title, out / name)
                for m, title, name in ((matrix, "test video AUC per artifact family", "specialization.png"),
                                       (pure, "test video AUC per artifact family, single-family fakes",
                                        "specialization_pure.png"))]
    sections.insert(1, ("Specialization matrix", _specialization_section(matrix, pure, heatmaps)))
    results["cross_dataset"] = recorded_cross_dataset(models_dir)
    sections.append(("Cross-dataset matrix", _cross_section(results["cross_dataset"])))
    atomic_write_json(out / "metrics.json", results)
    atomic_write_json(out / "videos.json", videos)
    write_markdown(out / "report.md", sections, "Interceptor evaluation report")
    log.info("report written to %s", out / "report.md")
    return results


def _agent_section(agent: Agent) -> str:
    rows = [[s, w, agent.validation["specialist_auc"].get(s)] for s, w in agent.weights.items()]
    return (f"Weights fitted on validation by **{agent.method}** ({agent.validation['videos']} videos); calibration: "
            f"log loss of the ensemble probability {fmt(agent.validation['log_loss'])}, AUC "
            f"{fmt(agent.validation['auc'])}. A specialist without input for a video (AV without audio) is left out "
            "of its vote and the others renormalised.\n\n"
            + markdown_table(["specialist", "weight", "validation AUC"], rows))


def _split_section(metrics: dict, roc: str, confusion: str) -> str:
    rows = [[name, *[entry["all"][m] for m in TABLE_METRICS]] for name, entry in metrics.items()]
    methods = sorted({m for entry in metrics.values() for m in entry if m != "all"})
    per_method = [[name, *[entry[m]["auc"] if m in entry else None for m in methods]] for name, entry in metrics.items()]
    return "\n\n".join([
        markdown_table(["scorer", *TABLE_METRICS], rows),
        "AUC per manipulation method (its fakes against all real videos):",
        markdown_table(["scorer", *methods], per_method),
        f"![ROC]({roc}) ![confusion matrix]({confusion})",
    ])


def _cross_section(matrix: dict) -> str:
    if not matrix:
        return "No cross-dataset matrix in the models directory (training records it; `interceptor export` copies it)."
    columns = list(dict.fromkeys(split for stages in matrix.values() for cells in stages.values() for split in cells))
    rows = [[spec, stage, *[cells.get(s) for s in columns]] for spec, stages in matrix.items()
            for stage, cells in stages.items()]
    return ("Video-level AUC of each specialist's best model after each curriculum stage (rows: what it was trained on "
            "so far) on the curriculum's eval sets, as training recorded it.\n\n"
            + markdown_table(["specialist", "trained through", *columns], rows))


# ------------------------------------------------------------------------------------------------ specialization

ALL_FAKES = "all fakes"


def family_lookup(manifest: str | Path | None) -> Callable[[str, str], list[str]]:
    """``(source, method) -> families`` of a fake video: from a synthetic corpus's ``synth_manifest.json``
    (``source`` is ``dataset:path`` inside the dataset's folder), else the manipulation method alone."""
    if manifest is None:
        return lambda source, method: [method]
    from interceptor.synth.corpus import DATASET_DIRS

    videos = read_json(Path(manifest), "synthetic corpus manifest")["videos"]

    def families(source: str, method: str) -> list[str]:
        dataset, path = source.split(":", 1)
        entry = videos.get(f"{DATASET_DIRS.get(dataset, dataset)}/{path}")
        if entry is None:
            raise KeyError(f"{manifest}: no video {path!r} of dataset {dataset!r} (eval.families names another corpus)")
        return list(entry["families"])

    return families


def specialization_matrix(tables: Mapping[str, VideoScores], families: Callable[[str, str], list[str]],
                          pure: bool = False) -> dict:
    """Rows: every scorer; columns: artifact families, then all fakes (not in the ``pure`` matrix). A cell is the
    video AUC, with its DeLong interval, of the fakes that carry the family (``pure``: that family alone) against
    every real video of the splits that hold such fakes, over the videos the scorer has input for, with the counts:
    ``{"columns": [...], "pure": bool, "rows": {scorer: {column: {auc, low, high, fakes, reals}}}}``."""
    videos = []  # (split, label, families, {scorer: score})
    for split, table in tables.items():
        for i, video in enumerate(table.videos):
            label = int(table.labels[i])
            found = families(table.sources[i], table.method(video)) if label == 1 else []
            videos.append((split, label, found, {name: float(s[i]) for name, s in table.scores.items()}))
    order = {name.upper(): i for i, name in enumerate(SPECIALISTS)}  # a synthetic corpus's families, in this order
    columns = sorted({f for _, label, found, _ in videos for f in found}, key=lambda f: (order.get(f, len(order)), f))
    if not pure:
        columns.append(ALL_FAKES)

    def carries(found: list[str], column: str) -> bool:
        if column == ALL_FAKES:
            return True
        return found == [column] if pure else column in found

    scorers = list(next(iter(tables.values())).scores) if tables else []
    rows: dict[str, dict] = {}
    for scorer in scorers:
        rows[scorer] = {}
        for column in columns:
            fakes = [v for v in videos if v[1] == 1 and carries(v[2], column)]
            splits = {v[0] for v in fakes}
            chosen = [v for v in videos if (v[1] == 0 and v[0] in splits) or v in fakes]
            chosen = [v for v in chosen if not np.isnan(v[3][scorer])]
            labels = [v[1] for v in chosen]
            auc, low, high = auc_interval(labels, [v[3][scorer] for v in chosen])
            rows[scorer][column] = {"auc": _number(auc), "low": _number(low), "high": _number(high),
                                    "fakes": sum(labels), "reals": len(labels) - sum(labels)}
    return {"columns": columns, "pure": pure, "rows": rows}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def own_family_ranks(matrix: dict) -> dict[str, dict]:
    """Per specialist with a column of its own family: its own cell's AUC, the family of the highest cell of its
    row (families only, not all fakes) and whether that is its own (what "specialist" means)."""
    out = {}
    for scorer, cells in matrix["rows"].items():
        own = scorer.upper()
        scored = {c: cells[c]["auc"] for c in matrix["columns"] if c != ALL_FAKES and cells[c]["auc"] is not None}
        if scorer not in SPECIALISTS or own not in scored:
            continue
        highest = max(scored, key=lambda c: (scored[c], c == own))
        out[scorer] = {"own_auc": scored[own], "highest": highest, "own_is_highest": highest == own}
    return out


def _specialization_section(matrix: dict, pure: dict, heatmaps: list[Path]) -> str:
    level = f"{CONFIDENCE:.0%}"
    ranks = pure["own_family"]
    own = [[scorer.upper(), fmt(rank["own_auc"]), rank["highest"], "yes" if rank["own_is_highest"] else "no"]
           for scorer, rank in ranks.items()]
    return "\n\n".join([
        "Video-level AUC of each scorer on the test fakes carrying each artifact family, against all real videos "
        f"of the splits holding such fakes, with its {level} interval (DeLong) and the videos counted "
        "(fakes/reals, over the videos the scorer has input for: AV's only those with audio).",
        "**Pure**: fakes that carry that family alone.",
        specialization_table(pure),
        "Whether each specialist's own family is the highest cell of its row in the pure matrix:",
        markdown_table(["specialist", "own family AUC", "highest cell", "own is highest"], own),
        "**All**: fakes that carry the family, alone or with others (a cell mixes its family with those it "
        "co-occurs with).",
        specialization_table(matrix),
        " ".join(f"![{path.stem}]({path.name})" for path in heatmaps),
    ])


def specialization_table(matrix: dict) -> str:
    """A specialization matrix as a markdown table: "AUC [low, high] (fakes/reals)" per cell, each specialist's
    own family starred."""
    rows = []
    for scorer, cells in matrix["rows"].items():
        row = [scorer.upper() if scorer in SPECIALISTS else scorer]
        for column in matrix["columns"]:
            star = "*" if column == scorer.upper() else ""
            row.append(f"{star}{_cell(cells[column])}{star}")
        rows.append(row)
    return markdown_table(["scorer", *matrix["columns"]], rows)


def _cell(cell: dict) -> str:
    interval = f" [{fmt(cell['low'])}, {fmt(cell['high'])}]" if cell["low"] is not None else ""
    return f"{fmt(cell['auc'])}{interval} ({cell['fakes']}/{cell['reals']})"
