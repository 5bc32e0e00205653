"""The end-to-end demo on the synthetic corpus (``make demo`` / ``interceptor demo``).

1. generate the synthetic corpus;  2. build the shards;  3. train every specialist through the curriculum
(the ``--specialist all`` supervisor, ``parallel.devices`` CPU processes);  4. collect the models, evaluate,
fit the agent and write the report;  5. predict on a held-out synthetic video (and on real DFDC videos: --dfdc-sample);
6. print the specialization matrix: every specialist's and the agent's test AUC per artifact family and on all fakes.
Every step skips work that is already done, so a rerun continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from interceptor.config import to_dict
from interceptor.models.registry import SPECIALISTS
from interceptor.schema import Config
from interceptor.synth import MANIFEST, generate_corpus
from interceptor.synth.corpus import DATASET_DIRS
from interceptor.utils import atomic_write_json

log = logging.getLogger(__name__)


def _build_shards(corpus: Path, shards: Path, cfg: Config) -> None:
    from interceptor.shards.build import build_shards

    for dataset, directory in DATASET_DIRS.items():
        build_shards(dataset, corpus / directory, shards / dataset, cfg.shards, progress=False)


def _train(config: str | None, overrides: list[str], shards: Path, runs: Path) -> None:
    command = [sys.executable, "-m", "interceptor.train.launch", "--specialist", "all", "--shards", str(shards),
               "--run-dir", str(runs), *(["--config", config] if config else []), *overrides]
    log.info("training: %s", " ".join(command))
    result = subprocess.run(command)
    if result.returncode != 0:
        raise RuntimeError(f"training failed (exit {result.returncode}); see {runs}/<specialist>/train.log, "
                           "and rerun `make demo` to resume")


def held_out_videos(corpus: Path) -> list[Path]:
    """A real video and one of its fakes from the synthetic FF++ test split (never trained on), for predict."""
    ffpp = corpus / DATASET_DIRS["ffpp"]
    first, second = json.loads((ffpp / "test.json").read_text())[0]
    fakes = sorted(ffpp.glob(f"manipulated_sequences/*/c23/videos/{first}_{second}.mp4")) + \
        sorted(ffpp.glob(f"manipulated_sequences/*/c23/videos/{second}_{first}.mp4"))
    target = fakes[0].stem.split("_")[0] if fakes else first
    return [ffpp / "original_sequences" / "youtube" / "c23" / "videos" / f"{target}.mp4", *fakes[:1]]


def true_labels(corpus: Path, videos: list[Path]) -> dict[str, str]:
    """The ground truth of the predicted videos: the corpus manifest, or a DFDC folder's metadata.json."""
    manifest = json.loads((corpus / MANIFEST).read_text())["videos"]
    truth = {}
    for video in videos:
        try:
            truth[str(video)] = "fake" if manifest[str(video.relative_to(corpus))]["label"] else "real"
        except (ValueError, KeyError):
            metadata = json.loads((video.parent / "metadata.json").read_text())
            truth[str(video)] = metadata[video.name]["label"].lower()
    return truth


def _predict(models: Path, videos: list[Path], truth: dict[str, str], cfg: Config) -> list[dict]:
    import torch

    from interceptor.predict import Predictor, predict_videos, summary_line

    predictor = Predictor.load(models, cfg, torch.device("cpu"))
    results = list(predict_videos(videos, predictor))
    print("\ninterceptor predict (held-out synthetic videos, then the real DFDC sample):")
    for result in results:
        result["truth"] = truth[result["video"]]
        print(f"  {summary_line(result)} [truth: {result['truth']}]")
    return results


def run_demo(out: str | Path, cfg: Config, config: str | None = None, overrides: list[str] | None = None,
             dfdc_sample: Path | None = None) -> dict:
    """Run the whole demo under ``out``; returns its summary (also written to ``out/summary.json``). ``dfdc_sample``:
    a folder holding ``dfdc_train_part_0/*.mp4``, real DFDC videos to predict on after the synthetic ones."""
    from interceptor.evaluation import ALL_FAKES, run_eval, specialization_table
    from interceptor.export import collect_models

    out = Path(out).resolve()
    real_videos = sorted((dfdc_sample / "dfdc_train_part_0").glob("*.mp4")) if dfdc_sample else []
    if dfdc_sample and not real_videos:
        raise FileNotFoundError(f"--dfdc-sample {dfdc_sample}: no dfdc_train_part_0/*.mp4 videos there")
    timings: dict[str, float] = {}
    start = last = time.time()

    def done(step: str) -> None:
        nonlocal last
        timings[step] = round(time.time() - last, 1)
        last = time.time()
        log.info("demo: %s done in %.0f s", step, timings[step])

    corpus = generate_corpus(out / "corpus", cfg.synth)
    done("synthetic corpus")
    shards = out / "shards"
    _build_shards(corpus, shards, cfg)
    done("shards")
    _train(config, list(overrides or []), shards, out / "runs")
    done("training")
    models = out / "models"
    collect_models(out / "runs", models, list(SPECIALISTS))
    metrics = run_eval(models, shards, out / "report", replace(cfg, eval=replace(cfg.eval, families=str(corpus / MANIFEST))))
    done("evaluation")
    videos = held_out_videos(corpus) + real_videos
    predictions = _predict(models, videos, true_labels(corpus, videos), cfg)
    done("predict")
    matrix, pure = metrics["specialization"], metrics["specialization_pure"]
    timings["total"] = round(time.time() - start, 1)
    summary = {"timings_s": timings, "agent_validation": metrics["agent"]["validation"], "specialization": matrix,
               "specialization_pure": pure,
               "own_family_auc": {s: rank["own_auc"] for s, rank in pure["own_family"].items()},
               "own_family_auc_all": {s: matrix["rows"][s][s.upper()]["auc"] for s in pure["own_family"]},
               "agent_auc_all_fakes": matrix["rows"]["agent"][ALL_FAKES]["auc"], "predictions": predictions,
               "config": to_dict(cfg)}
    atomic_write_json(out / "summary.json", summary)

    print("\nSpecialization on the synthetic test splits: video-level ROC-AUC [95% interval, DeLong] (fakes/reals) "
          "of each scorer on the fakes carrying each artifact family against the real videos of their splits; "
          "* marks a specialist's own family.\n\nPure: fakes carrying that family alone\n")
    print(specialization_table(pure))
    print("\nOwn family the highest cell of its row (pure): " + ", ".join(
        f"{s.upper()} {'yes' if rank['own_is_highest'] else 'no (' + rank['highest'] + ')'}"
        for s, rank in pure["own_family"].items()))
    print("\nAll: fakes carrying the family, alone or with others\n")
    print(specialization_table(matrix))
    print(f"\nDemo finished in {timings['total'] / 60:.1f} min ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    print(f"models: {models}")
    print(f"report: {out / 'report' / 'report.md'}")
    return summary
