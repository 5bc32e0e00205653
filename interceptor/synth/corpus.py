"""The synthetic forgery corpus: FF++, Celeb-DF v2 and DFDC in their official on-disk layouts.

The corpus is planned first (every file name, label, identity, artifact family and seed, from one RNG), then
rendered group by group in worker processes: a group is an original and the fakes derived from it, rendered
from the same frames in one pass. The same seed gives the same bytes.

Besides the official files, the corpus root holds:

- ``synth_manifest.json``: every video with its label, original, identity, artifact families and their
  parameters, per-frame face boxes of every person (main talker first) and the mouth position in the face box;
- ``boxes/{ffpp,celebdf,dfdc}.json``: ground-truth face boxes in the format read by the shard builder's
  ``boxes`` detector backend (paths relative to that dataset's root).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from interceptor import LABEL_FAKE, LABEL_REAL
from interceptor.config import ConfigError, to_dict
from interceptor.schema import SynthConfig
from interceptor.synth.artifacts import apply_audio, apply_visual, sample_params
from interceptor.synth.audio import plan_syllables, synthesize
from interceptor.synth.encode import Mp4Writer
from interceptor.synth.faces import identity_count, make_sprite
from interceptor.synth.scene import SceneRenderer, sample_scene
from interceptor.utils import atomic_write_json, atomic_write_text, filled_allocations

log = logging.getLogger(__name__)

CORPUS_VERSION = 4
MANIFEST = "synth_manifest.json"
DATASET_DIRS = {"ffpp": "FaceForensics++", "celebdf": "Celeb-DF-v2", "dfdc": "DFDC"}
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
# The second artifact family each FF++ method tends to leave (all FF++ c23 fakes are double-compressed: CM).
_FFPP_SECOND_FAMILY = {"Deepfakes": "RR", "Face2Face": "TM", "FaceSwap": "BG", "NeuralTextures": "LL",
                       "FaceShifter": "BG"}
_VISUAL = ("LL", "BG", "CM", "RR", "TM")
_LOW_LIGHT_SHARE = 0.25  # share of scenes in low light besides those a LL fake needs
_AV_MIN_SYNC_DROP = 0.4  # an AV fake's mouth-loudness correlation is at least this much below its original's
_AV_DRAWS = 8  # AV parameter draws before the last one is kept


@dataclass
class VideoPlan:
    path: str  # relative to the corpus root
    dataset: str
    label: int  # project convention: 0 real, 1 fake
    method: str
    original: str | None  # corpus-relative path of the original, for fakes
    families: dict[str, dict] = field(default_factory=dict)


@dataclass
class GroupPlan:
    """An original video and the fakes rendered from its frames."""

    dataset: str
    seed: int
    seconds: float
    identity: int
    has_audio: bool
    two_people: bool
    videos: list[VideoPlan] = field(default_factory=list)
    low_light: bool = False  # forced on when a fake carries LL, else drawn

    def finish(self, rng: np.random.Generator) -> GroupPlan:
        """Decide the scene's light once every fake's families are known."""
        self.low_light = any("LL" in v.families for v in self.videos) or bool(rng.random() < _LOW_LIGHT_SHARE)
        return self


# ------------------------------------------------------------------------------------------------ planning


def _families(rng: np.random.Generator, candidates: list[str], count: int) -> dict[str, dict]:
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    return {str(f): sample_params(str(f), rng) for f in sorted(chosen)}


def _scene(group: GroupPlan, cfg: SynthConfig):
    width = int(round(cfg.size * 16 / 9 / 2)) * 2
    height = cfg.size // 2 * 2
    return sample_scene(np.random.default_rng(group.seed), width, height, cfg.fps, group.seconds,
                        identity=group.identity, two_people=group.two_people, low_light=group.low_light)


def _seconds(rng: np.random.Generator, cfg: SynthConfig) -> float:
    return round(float(cfg.seconds * rng.uniform(0.8, 1.25)), 2)


def plan_ffpp(rng: np.random.Generator, cfg: SynthConfig) -> tuple[list[GroupPlan], dict[str, list]]:
    """FF++ c23: pairs of originals; each direction of a pair is faked by one method (cycling)."""
    n_pairs = max(3, round(cfg.videos / 4))
    ids = [f"{i:03d}" for i in range(2 * n_pairs)]
    pairs = [[ids[2 * i], ids[2 * i + 1]] for i in range(n_pairs)]
    order = rng.permutation(n_pairs)
    n_test = max(1, round(0.2 * n_pairs))
    n_val = max(1, round(0.2 * n_pairs))
    splits = {"test": [pairs[i] for i in order[:n_test]], "val": [pairs[i] for i in order[n_test:n_test + n_val]],
              "train": [pairs[i] for i in order[n_test + n_val:]]}
    base = "FaceForensics++"
    groups = []
    for p, (a, b) in enumerate(pairs):
        for d, (target, source) in enumerate(((a, b), (b, a))):
            method = FFPP_METHODS[(2 * p + d) % len(FFPP_METHODS)]
            group = GroupPlan("ffpp", int(rng.integers(2**31)), _seconds(rng, cfg),
                              int(rng.integers(identity_count())), False, False)
            original = f"{base}/original_sequences/youtube/c23/videos/{target}.mp4"
            families = {"CM": sample_params("CM", rng)}
            second = _FFPP_SECOND_FAMILY[method]
            if rng.random() < 0.75:
                families[second] = sample_params(second, rng)
            group.videos = [
                VideoPlan(original, "ffpp", LABEL_REAL, "original", None),
                VideoPlan(f"{base}/manipulated_sequences/{method}/c23/videos/{target}_{source}.mp4", "ffpp",
                          LABEL_FAKE, method, original, dict(sorted(families.items()))),
            ]
            groups.append(group.finish(rng))
    return groups, splits


def plan_celebdf(rng: np.random.Generator, cfg: SynthConfig) -> tuple[list[GroupPlan], list[tuple[int, str]]]:
    """Celeb-DF v2: celebrity reals with their syntheses, unrelated YouTube reals, and the official test list."""
    n_identities = max(4, cfg.videos // 10)
    identities = rng.choice(identity_count(), size=n_identities, replace=False)
    n_celeb = max(n_identities, round(cfg.videos * 0.3))
    n_youtube = max(2, round(cfg.videos * 0.2))
    n_fakes = max(n_celeb, cfg.videos - n_celeb - n_youtube)
    test_ids = set(range(n_identities - max(1, n_identities // 3), n_identities))
    base = "Celeb-DF-v2"
    groups, test_list = [], []
    for c in range(n_celeb):
        x = c % n_identities
        clip = c // n_identities
        group = GroupPlan("celebdf", int(rng.integers(2**31)), _seconds(rng, cfg), int(identities[x]), False, False)
        original = f"{base}/Celeb-real/id{x}_{clip:04d}.mp4"
        group.videos.append(VideoPlan(original, "celebdf", LABEL_REAL, "Celeb-real", None))
        n_here = n_fakes // n_celeb + (1 if c < n_fakes % n_celeb else 0)
        sources = [y for y in range(n_identities) if y != x]
        for y in rng.choice(sources, size=min(n_here, len(sources)), replace=False):
            families = _families(rng, ["LL", "BG", "RR", "TM"], int(rng.integers(1, 3)))
            if rng.random() < 0.25:
                families["CM"] = sample_params("CM", rng)
            group.videos.append(VideoPlan(f"{base}/Celeb-synthesis/id{x}_id{int(y)}_{clip:04d}.mp4", "celebdf",
                                          LABEL_FAKE, "Celeb-synthesis", original, dict(sorted(families.items()))))
        groups.append(group.finish(rng))
        if x in test_ids:
            test_list += [(1 if v.label == LABEL_REAL else 0, v.path[len(base) + 1:]) for v in group.videos]
    for i in range(n_youtube):
        group = GroupPlan("celebdf", int(rng.integers(2**31)), _seconds(rng, cfg),
                          int(rng.integers(identity_count())), False, False,
                          [VideoPlan(f"{base}/YouTube-real/{i:05d}.mp4", "celebdf", LABEL_REAL, "YouTube-real", None)])
        groups.append(group.finish(rng))
        if i % 3 == 0:
            test_list.append((1, group.videos[0].path[len(base) + 1:]))
    return groups, test_list


def _dfdc_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(list(string.ascii_lowercase), size=10)) + ".mp4"
        if name not in taken:
            taken.add(name)
            return name


def plan_dfdc(rng: np.random.Generator, cfg: SynthConfig) -> list[GroupPlan]:
    """DFDC: per chunk, clusters of one real video and ``dfdc_fakes_per_original`` fakes made from it, all with
    audio; ``dfdc_videos`` over all chunks.

    Every fake carries one artifact family alone, so that the pure specialization matrix has fakes of every
    family in every split (FF++'s and Celeb-DF's fakes carry the mixes): a cluster's first fake has only its
    audio swapped or shifted (AV), the others one visual family each, in turn over the clusters.
    """
    per_cluster = 1 + cfg.dfdc_fakes_per_original
    clusters = max(1, round((cfg.dfdc_videos or cfg.videos) / per_cluster / cfg.dfdc_chunks))
    taken: set[str] = set()
    groups = []
    visual = 0  # visual fakes planned so far: the next one's family is the next in turn
    for chunk in range(cfg.dfdc_chunks):
        base = f"DFDC/dfdc_train_part_{chunk}"
        for _ in range(clusters):
            group = GroupPlan("dfdc", int(rng.integers(2**31)), _seconds(rng, cfg),
                              int(rng.integers(identity_count())), True, bool(rng.random() < 0.3))
            original = f"{base}/{_dfdc_name(rng, taken)}"
            group.videos.append(VideoPlan(original, "dfdc", LABEL_REAL, "original", None))
            for fake in range(cfg.dfdc_fakes_per_original):
                if fake == 0:
                    family = "AV"
                else:
                    family, visual = _VISUAL[visual % len(_VISUAL)], visual + 1
                group.videos.append(VideoPlan(f"{base}/{_dfdc_name(rng, taken)}", "dfdc", LABEL_FAKE, "dfdc",
                                              original, {family: sample_params(family, rng)}))
            groups.append(group.finish(rng))
    return groups


# ------------------------------------------------------------------------------------------------ rendering


def render_group(group: GroupPlan, cfg: SynthConfig, root: str) -> list[dict]:
    """Render and encode one original and its fakes from the same frames; return their manifest entries.

    The encoder's memory is filled first (:func:`~interceptor.utils.filled_allocations`), so the bytes written
    do not depend on which groups the process rendered before: the same seed gives the same corpus, whatever
    worker renders which group."""
    with filled_allocations():
        return _render_group(group, cfg, root)


def _render_group(group: GroupPlan, cfg: SynthConfig, root: str) -> list[dict]:
    scene = _scene(group, cfg)
    renderer = SceneRenderer(scene)
    audio = None
    if group.has_audio:
        audio = synthesize(np.random.default_rng((group.seed, 1)), scene.syllables, scene.seconds, cfg.audio_rate,
                           scene.pitch)
    writers = []
    tracks: list[list[list[float]]] = [[] for _ in scene.people]
    try:
        for number, video in enumerate(group.videos):
            track = None
            if audio is not None:
                track = _out_of_step_audio(video, number, group.seed, audio, renderer.openings, scene, cfg) \
                    if "AV" in video.families else audio
            writers.append(Mp4Writer(Path(root) / video.path, scene.width, scene.height, scene.fps, cfg.crf,
                                     audio=track, audio_rate=cfg.audio_rate))
        for index in range(scene.n_frames):
            layers = renderer.render(index)
            for person, box in enumerate(layers.boxes):
                tracks[person].append([round(float(v), 1) for v in box])
            for video, writer in zip(group.videos, writers):
                writer.write(apply_visual(video.families, layers, index, scene))
        for writer in writers:
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    sprite = make_sprite(scene.people[0].identity)
    fx, fy, fw, fh = sprite.face_box
    mouth = [round((sprite.mouth[0] - fx) / fw, 3), round((sprite.mouth[1] - fy) / fh, 3)]
    return [
        {**asdict(video), "identity": scene.people[0].identity, "has_audio": group.has_audio,
         "low_light": scene.low_light, "fps": scene.fps, "frames": scene.n_frames, "width": scene.width,
         "height": scene.height, "mouth_in_box": mouth, "faces": tracks}
        for video in group.videos
    ]


def _loudness_sync(audio: np.ndarray, openings: np.ndarray, rate: int, fps: int) -> float:
    """Correlation of the mouth opening with the audio's loudness, frame by frame (1: speech follows the mouth)."""
    window = rate // fps
    frames = min(len(openings), len(audio) // window)
    loudness = np.sqrt(np.mean(audio[:frames * window].reshape(frames, window).astype(np.float64) ** 2, axis=1))
    return float(np.corrcoef(openings[:frames], loudness)[0, 1])


def _out_of_step_audio(video: VideoPlan, number: int, seed: int, audio: np.ndarray, openings: np.ndarray, scene,
                       cfg: SynthConfig) -> np.ndarray:
    """An AV fake's audio track. A draw whose speech still follows the mouth (a shift close to the speech
    rhythm's period, or unrelated speech of the same rhythm: mouth-loudness correlation within
    ``_AV_MIN_SYNC_DROP`` of the original's) would be a fake without its artifact: the AV parameters are drawn
    again (from this video's own seed, so no other video changes; at most ``_AV_DRAWS`` draws) and the manifest
    records the ones used."""
    in_sync = _loudness_sync(audio, openings, cfg.audio_rate, scene.fps)
    for attempt in range(_AV_DRAWS):
        params = video.families["AV"]
        unrelated = None
        if params["mode"] == "unrelated":
            other = np.random.default_rng(params["seed"])
            unrelated = synthesize(other, plan_syllables(other, scene.seconds), scene.seconds, cfg.audio_rate,
                                   float(other.uniform(100, 220)))
        track = apply_audio(video.families, audio, cfg.audio_rate, unrelated)
        if _loudness_sync(track, openings, cfg.audio_rate, scene.fps) < in_sync - _AV_MIN_SYNC_DROP \
                or attempt == _AV_DRAWS - 1:
            return track
        video.families["AV"] = sample_params("AV", np.random.default_rng((seed, number, attempt)))


def _render_task(args: tuple[GroupPlan, SynthConfig, str]) -> list[dict]:
    return render_group(*args)


# ------------------------------------------------------------------------------------------------ writing


def _write_official_files(root: Path, ffpp_splits: dict, celebdf_test: list, entries: dict[str, dict]) -> None:
    for split, pairs in ffpp_splits.items():
        atomic_write_text(root / DATASET_DIRS["ffpp"] / f"{split}.json", json.dumps(pairs) + "\n")
    lines = "".join(f"{label} {path}\n" for label, path in celebdf_test)
    atomic_write_text(root / DATASET_DIRS["celebdf"] / "List_of_testing_videos.txt", lines)
    chunks: dict[str, dict] = {}
    for path, entry in entries.items():
        if entry["dataset"] != "dfdc":
            continue
        chunk_dir, name = path.rsplit("/", 1)
        chunks.setdefault(chunk_dir, {})[name] = {
            "label": "FAKE" if entry["label"] == LABEL_FAKE else "REAL",
            "split": "train",
            "original": entry["original"].rsplit("/", 1)[1] if entry["original"] else None,
        }
    for chunk_dir, metadata in chunks.items():
        atomic_write_text(root / chunk_dir / "metadata.json", json.dumps(metadata) + "\n")


def _write_boxes(root: Path, entries: dict[str, dict]) -> None:
    for dataset, directory in DATASET_DIRS.items():
        boxes = {
            path[len(directory) + 1:]: [[track[i] for track in entry["faces"]] for i in range(entry["frames"])]
            for path, entry in entries.items() if entry["dataset"] == dataset
        }
        atomic_write_json(root / "boxes" / f"{dataset}.json", boxes)


def _is_up_to_date(root: Path, cfg: SynthConfig) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("version") != CORPUS_VERSION or manifest.get("config") != to_dict(cfg):
        return False
    return all((root / path).is_file() for path in manifest["videos"])


def plan_corpus(cfg: SynthConfig) -> tuple[list[GroupPlan], dict, list]:
    rng = np.random.default_rng(cfg.seed)
    ffpp, ffpp_splits = plan_ffpp(np.random.default_rng(rng.integers(2**63)), cfg)
    celebdf, celebdf_test = plan_celebdf(np.random.default_rng(rng.integers(2**63)), cfg)
    dfdc = plan_dfdc(np.random.default_rng(rng.integers(2**63)), cfg)
    return ffpp + celebdf + dfdc, ffpp_splits, celebdf_test


def check_synth_config(cfg: SynthConfig) -> None:
    """Counts, sizes, rates and durations must be positive (crf within H.264's 0-51): a ConfigError naming
    the key."""
    for key in ("videos", "size", "seconds", "fps", "audio_rate", "dfdc_chunks", "dfdc_fakes_per_original", "workers"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"synth.{key}: must be positive, got {getattr(cfg, key)!r}")
    if not 0 <= cfg.crf <= 51:
        raise ConfigError(f"synth.crf: must be between 0 and 51, got {cfg.crf!r}")


def generate_corpus(out: str | Path, cfg: SynthConfig) -> Path:
    """Write the corpus under ``out`` (skipped when an identical corpus is already there)."""
    check_synth_config(cfg)
    root = Path(out)
    if _is_up_to_date(root, cfg):
        log.info("synthetic corpus in %s is up to date", root)
        return root
    groups, ffpp_splits, celebdf_test = plan_corpus(cfg)
    n_videos = sum(len(g.videos) for g in groups)
    log.info("rendering %d videos (%d groups) into %s with %d workers", n_videos, len(groups), root, cfg.workers)
    tasks = [(g, cfg, str(root)) for g in groups]
    entries: dict[str, dict] = {}
    bar = tqdm(total=n_videos, unit="video", desc="synth")
    if cfg.workers > 1:
        with mp.get_context("spawn").Pool(cfg.workers) as pool:
            for result in pool.imap(_render_task, tasks):
                entries.update({e["path"]: e for e in result})
                bar.update(len(result))
    else:
        for task in tasks:
            result = _render_task(task)
            entries.update({e["path"]: e for e in result})
            bar.update(len(result))
    bar.close()
    _write_official_files(root, ffpp_splits, celebdf_test, entries)
    _write_boxes(root, entries)
    atomic_write_json(root / MANIFEST, {"generator": "interceptor.synth", "version": CORPUS_VERSION,
                                        "config": to_dict(cfg), "videos": entries})
    log.info("synthetic corpus written to %s", root)
    return root
