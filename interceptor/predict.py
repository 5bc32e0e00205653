"""``interceptor predict``: the agent's verdict on video files.

    predictor = Predictor.load("demo/models", load_config(), torch.device("cpu"))
    for result in predict_videos(["a.mp4", "b.mp4"], predictor):
        print(result["label"], result["fake_probability"])     # or result["error"]

A video goes through the shard builder's own per-video path (:func:`~interceptor.shards.extract_clips`: decode
upright, detect and track every face, crop the clips, cut their audio) with the val/test settings
(``shards.eval_clips_per_video``). Its clips become model inputs exactly as at evaluation
(:func:`~interceptor.inputs.clip_item`), every specialist scores all of them in batches on the device, and a
specialist's score of a face is the mean of its clip probabilities (the evaluator's ``video_mean``). The agent
votes on each face: ``agent.json`` of the models directory, else the fixed vote (the specialists' declared
weights, ``agent.fixed_weights`` overriding them). AV gets no score (input missing) for a video without an audio
track, so the vote leaves it out and renormalises.
The video's P(fake) aggregates its faces' as the evaluation does (``eval.face_aggregation``: the most suspicious
face by default), and the result lists every face.

The models directory (what the demo writes, see docs/predict.md)::

    MODELS/<spec>_model/            model.safetensors + model.json (export_model), one per trained specialist
    MODELS/<spec>_model_student/    optional distilled student (used with students=True)
    MODELS/agent.json               optional fitted agent (Agent.save)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from interceptor.agent import Agent
from interceptor.inputs import InputKind, InputSpec, clip_item, evaluation_rows, model_inputs, stack_inputs
from interceptor.metrics import aggregate_faces
from interceptor.models import SPECIALISTS, Detector, load_model
from interceptor.models.registry import fixed_vote_weights
from interceptor.models.export import DESCRIPTION
from interceptor.models_dir import AGENT_FILE, STUDENT_SUFFIX, model_dirs
from interceptor.schema import AgentConfig, Config, ShardsConfig
from interceptor.shards import VideoClips, VideoError, extract_clips
from interceptor.shards.extract import Clip

log = logging.getLogger(__name__)

class ModelsError(ValueError):
    """A models directory that cannot be used as it is; the message names the path."""


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` or ``cpu``; None picks CUDA when it is available."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    return torch.device(name)


@dataclass
class Specialist:
    """One loaded specialist: its model, the inputs it takes, and the export it came from."""

    name: str
    model: Detector
    spec: InputSpec
    directory: Path
    student: bool


def check_crops(specialist: Specialist, shards: ShardsConfig) -> None:
    """The clips predict cuts with ``shards`` must be the kind the specialist was trained on."""
    config, where = specialist.model.config, specialist.directory / DESCRIPTION
    if abs(config.context_margin - shards.margin) > 1e-3:
        raise ModelsError(f"{where}: the model reads crops with context margin {config.context_margin} but "
                          f"shards.margin is {shards.margin}: set them equal")
    if specialist.spec.kind is not InputKind.FRAME and config.frames_per_clip > shards.frames_per_clip:
        raise ModelsError(f"{where}: the model takes {config.frames_per_clip} frames per clip but clips have "
                          f"shards.frames_per_clip = {shards.frames_per_clip}")
    if specialist.spec.kind.has_audio and config.audio_rate != shards.audio_rate:
        raise ModelsError(f"{where}: the model takes audio at {config.audio_rate} Hz but clips have "
                          f"shards.audio_rate = {shards.audio_rate}")


def load_specialists(models_dir: str | Path, device: torch.device, students: bool = False) -> list[Specialist]:
    """Every specialist exported under ``models_dir`` (its student instead where ``students`` and one exists)."""
    models_dir = Path(models_dir)
    directories = model_dirs(models_dir)
    if students:
        directories.update(model_dirs(models_dir, students=True))
    found = []
    for name, directory in directories.items():
        model = load_model(directory, device)
        found.append(Specialist(name, model, InputSpec.of(model), directory, directory.name.endswith(STUDENT_SUFFIX)))
    if not found:
        raise ModelsError(f"{models_dir}: no exported specialist found (expected <spec>_model/{DESCRIPTION} for "
                          f"a spec among {', '.join(SPECIALISTS)}; the demo writes demo/models)")
    return found


def load_agent(models_dir: str | Path, cfg: AgentConfig) -> Agent:
    """The fitted ``agent.json`` of ``models_dir``, else the fixed vote: the specialists' declared vote weights,
    ``agent.fixed_weights`` overriding them."""
    path = Path(models_dir) / AGENT_FILE
    if not path.is_file():
        return Agent("fixed", fixed_vote_weights(cfg.fixed_weights), threshold=cfg.threshold)
    try:
        return Agent.load(path)
    except (ValueError, TypeError) as err:  # malformed JSON, unknown or missing fields
        raise ModelsError(f"{path}: not an agent file: {err}") from None


class Predictor:
    """The specialists and the agent, loaded once; :meth:`predict` gives one video's verdict."""

    def __init__(self, specialists: list[Specialist], agent: Agent, cfg: Config, device: torch.device):
        self.specialists, self.agent, self.device = specialists, agent, device
        self.shards = dataclasses.replace(cfg.shards, detector=cfg.predict.detector,
                                          decode_threads=cfg.predict.decode_threads)
        self.eval_frames, self.batch_size = cfg.data.eval_frames, cfg.data.eval_batch_size
        self.face_aggregation = cfg.eval.face_aggregation
        for specialist in specialists:
            check_crops(specialist, self.shards)

    @classmethod
    def load(cls, models_dir: str | Path, cfg: Config, device: torch.device, students: bool = False) -> Predictor:
        specialists = load_specialists(models_dir, device, students)
        agent = load_agent(models_dir, cfg.agent)
        log.info("predict: %s from %s on %s, %s agent", " ".join(s.name + ("(student)" if s.student else "")
                 for s in specialists), models_dir, device, agent.method)
        return cls(specialists, agent, cfg, device)

    @torch.inference_mode()
    def clip_probabilities(self, specialist: Specialist, clips: list[Clip]) -> list[float]:
        """P(fake) of every model row of ``clips`` (one per clip, or per frame with ``data.eval_frames=all``)."""
        items = [clip_item(clip.frames, clip.audio, specialist.spec, eval_frames=self.eval_frames) for clip in clips]
        rows = evaluation_rows(items, specialist.spec, self.eval_frames)
        probabilities = []
        for start in range(0, len(rows), self.batch_size):
            batch = stack_inputs(rows[start:start + self.batch_size], specialist.spec)
            logits = specialist.model(**model_inputs(batch, specialist.spec, self.device))
            probabilities += torch.softmax(logits.float(), dim=-1)[:, 1].cpu().tolist()
        return probabilities

    def face_scores(self, clips: list[Clip], has_audio: bool) -> dict[str, float | None]:
        """Each specialist's P(fake) of one face: the mean over its clips (None for AV without audio)."""
        scores: dict[str, float | None] = {}
        for specialist in self.specialists:
            if specialist.spec.kind.has_audio and not has_audio:
                scores[specialist.name] = None  # input missing: left out of the vote, not counted as "real"
            else:
                # Every clip has as many rows, so the mean over rows is the mean of the clip probabilities.
                scores[specialist.name] = float(np.mean(self.clip_probabilities(specialist, clips)))
        return scores

    def predict(self, path: str | Path) -> dict:
        """The verdict on one video as a JSON-ready dict. Raises :class:`VideoError` when it gives no clip and
        ValueError when no specialist with a weight can vote on it."""
        start = time.perf_counter()
        video = extract_clips(path, self.shards, num_clips=self.shards.eval_clips_per_video)
        faces = []
        for face, track in enumerate(video.tracks):
            clips = [clip for clip in video.clips if clip.face == face]
            if not clips:
                continue
            scores = self.face_scores(clips, video.has_audio)
            probability, shares = self.agent.vote(scores)
            faces.append({"face": face, "box": _median_box(track), "fake_probability": probability,
                          "clips": len(clips), "frames": int(np.count_nonzero(~np.isnan(track.boxes[:, 0]))),
                          "specialists": scores, "weights": shares})
        fake_probability = aggregate_faces([f["fake_probability"] for f in faces], self.face_aggregation)
        return {
            "video": str(path),
            "label": "fake" if fake_probability >= self.agent.threshold else "real",
            "fake_probability": fake_probability,
            "threshold": self.agent.threshold,
            "agent": self.agent.method,
            "face_aggregation": self.face_aggregation,
            "specialists": {s.name: self._specialist_entry(s, faces) for s in self.specialists},
            "faces": faces,
            **video_summary(video),
            "device": str(self.device),
            "seconds": round(time.perf_counter() - start, 3),
        }

    def _specialist_entry(self, specialist: Specialist, faces: list[dict]) -> dict:
        """A specialist's probability over the faces (aggregated as the verdict is) and its vote weight."""
        scores = [f["specialists"][specialist.name] for f in faces]
        missing = any(score is None for score in scores)
        entry = {"probability": None if missing else aggregate_faces(scores, self.face_aggregation),
                 "weight": max(f["weights"].get(specialist.name, 0.0) for f in faces),
                 "clips": 0 if missing else sum(f["clips"] for f in faces),
                 "model": "student" if specialist.student else "full"}
        if missing:
            entry["note"] = "no audio"
        return entry


def _median_box(track) -> list[float]:
    """A face's typical box: the per-coordinate median over the frames it is tracked in (upright pixels)."""
    return [round(float(v), 1) for v in np.nanmedian(track.boxes, axis=0)]


def video_summary(video: VideoClips) -> dict:
    """What the clips of a prediction were cut from: clips and frames used, frames with a face, audio, warnings."""
    summary = {
        "clips": len(video.clips),
        "frames": sum(len(clip.frame_indices) for clip in video.clips),
        "faces_found": int(np.count_nonzero(np.any([~np.isnan(t.boxes[:, 0]) for t in video.tracks], axis=0))),
        "video_frames": video.info.num_frames,
        "rotation": video.info.rotation,
        "has_audio": video.has_audio,
        "detector": video.detector,
    }
    if video.warnings:
        summary["warnings"] = video.warnings
    return summary


def predict_videos(paths: Iterable[str | Path], predictor: Predictor) -> Iterator[dict]:
    """:meth:`Predictor.predict` of every video; one that gets no verdict, whatever the failure, gives
    ``{"video", "error"}`` instead and the next video is still scored."""
    for path in paths:
        start = time.perf_counter()
        try:
            yield predictor.predict(path)
        except (VideoError, ValueError) as err:
            yield {"video": str(path), "error": f"{path}: {err}", "seconds": round(time.perf_counter() - start, 3)}
        except Exception as err:  # noqa: BLE001 - an unforeseen failure on one video must not end the others
            log.debug("predict %s failed", path, exc_info=True)
            yield {"video": str(path), "error": f"{path}: {type(err).__name__}: {err}",
                   "seconds": round(time.perf_counter() - start, 3)}


def summary_line(result: dict) -> str:
    """One readable line of a :func:`predict_videos` result."""
    if "error" in result:
        return f"error: {result['error']}"
    scores = ", ".join(f"{name} {'-' if s['probability'] is None else format(s['probability'], '.2f')}"
                       for name, s in result["specialists"].items())
    audio = "audio" if result["has_audio"] else "no audio"
    faces = ", ".join(f"face {f['face']} {f['fake_probability']:.2f}" for f in result["faces"])
    return (f"{result['video']}: {result['label'].upper()} {result['fake_probability']:.3f} "
            f"(threshold {result['threshold']:.2f}; {faces}; {scores}; {result['clips']} clips, faces in "
            f"{result['faces_found']}/{result['video_frames']} frames, {audio}; {result['seconds']:.1f} s on "
            f"{result['device']})")
