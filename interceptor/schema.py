"""The configuration schema: one dataclass per section, assembled into :class:`Config`.

Defaults are the production values (EfficientNet-B4, 380 px crops); the packaged ``demo`` config
(``configs/demo.yaml``) scales them down for the synthetic corpus on a CPU. Every key documented here can be set in YAML or overridden on the command line
as ``section.key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SynthConfig:
    """The synthetic forgery corpus (``interceptor synth``)."""

    seed: int = 0
    videos: int = 60  # videos per dataset (approximately: originals plus their fakes)
    size: int = 180  # frame height in pixels; width is 16:9
    seconds: float = 3.0
    fps: int = 25
    audio_rate: int = 44100  # AAC sample rate of DFDC videos (FF++ and Celeb-DF have no audio)
    crf: int = 23  # H.264 constant rate factor: 23 matches FF++ "c23"
    dfdc_chunks: int = 10
    dfdc_videos: int = 0  # DFDC videos over all chunks (the largest dataset in reality); 0 = videos
    dfdc_fakes_per_original: int = 5  # DFDC fakes made from each real video (the first AV, the others visual)
    workers: int = 2  # processes used to render and encode videos


# The standard FF++ protocol's four methods; FaceShifter (added to FF++ later) is opt-in, and a build with it
# is labelled as such (manifest ``protocol``).
FFPP_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
FFPP_OPTIONAL_METHODS = ["FaceShifter"]


@dataclass
class DetectorConfig:
    """Face detection and tracking for the shard builder (``shards.detector``)."""

    # mtcnn: a CNN cascade (weights from the facenet-pytorch wheel, see weights); haar: OpenCV's cascade, needs
    # nothing; yunet: OpenCV's YuNet (ONNX weights); boxes: precomputed boxes (boxes_file)
    backend: Literal["mtcnn", "haar", "yunet", "boxes"] = "mtcnn"
    every: int = 10  # detect every k-th frame; boxes in between are tracked (interpolated and smoothed)
    # a full-frame pass on every n-th detection (and when a followed face is lost); in between the faces found are
    # only followed. Following finds new faces late: 10 x every frames (3.3 s at 30 fps) at worst
    full_every: int = 10
    size: int = 640  # longest side of the image the detector sees, in pixels (frames are downscaled to it)
    min_face: float = 0.05  # smallest face to look for, as a fraction of the frame height
    scale_factor: float = 1.15  # haar: image pyramid step
    min_neighbors: int = 4  # haar: overlapping detections needed to keep one
    # find faces in low light: haar equalises the histogram first, mtcnn stretches the levels (1st-99th percentile)
    equalize: bool = True
    score_threshold: float = 0.6  # yunet: minimum face score
    # mtcnn: the facenet-pytorch 2.6.0 wheel or a folder of its pnet.pt, rnet.pt, onet.pt (default: the wheel
    # `make install` puts in <venv>/share/interceptor/); yunet: the ONNX model (face_detection_yunet_2023mar.onnx)
    weights: str | None = None
    boxes_file: str | None = None  # boxes: JSON of precomputed per-frame boxes, paths relative to the dataset root
    track_iou: float = 0.3  # a detection joins a track when it overlaps the track's last box this much
    max_gap: int = 2  # detection frames a track may miss and still continue
    min_track_fraction: float = 0.3  # a stable track is found in this share of detection frames (and in half as
    # many as the most often found track); every stable face is kept, each giving its own clips
    min_face_ratio: float = 0.4  # a kept face's size (median box side) is at least this share of the largest's
    max_faces: int = 4  # at most this many faces per video (the largest ones)
    smooth: int = 3  # moving-average window over a track's detections (odd; 1 = no smoothing)


@dataclass
class ShardsConfig:
    """The WebDataset shard builder (``interceptor shards build``); see shards/FORMAT.md."""

    crop_size: int = 380  # side of the square face crops, in pixels
    margin: float = 0.333  # crop margin on each side, as a fraction of the face box (DFDC winners: 1/3)
    image_format: Literal["png", "jpg"] = "png"  # png is lossless; jpg only with quality >= 95
    # PNG row filter: "up" decodes about 1.6x faster than libpng's per-row "adaptive" choice for 9% more bytes
    # (BENCHMARKS.md, "Loader at production settings"); the pixels are the same either way.
    png_filter: Literal["up", "adaptive"] = "up"
    jpeg_quality: int = 95
    frames_per_clip: int = 8
    frame_stride: int = 2  # take every n-th frame inside a clip
    clips_per_video: int = 4  # train split
    eval_clips_per_video: int = 8  # val and test splits
    audio_rate: int = 16000  # mono int16 audio per clip, when the video has a track
    shard_max_samples: int = 1000
    shard_max_bytes: int = 1_000_000_000
    # A fake's face whose crops differ from its original's (same frames) by more than this inside the face box
    # beyond the difference around it (the re-encoding noise; mean absolute differences in 8-bit levels) was
    # manipulated; an unchanged face of a fake is dropped ("drop") or labelled real ("real"). Fakes without their
    # original in the shard set, or with no changed face (an audio-only fake), keep their label on every face.
    face_change_threshold: float = 1.5
    unchanged_faces: Literal["drop", "real"] = "drop"
    ffpp_compression: Literal["raw", "c23", "c40"] = "c23"
    ffpp_methods: list[str] = field(default_factory=lambda: list(FFPP_METHODS))  # add FaceShifter to opt in
    celebdf_val_fraction: float = 0.15  # share of non-test identities (and YouTube-real videos) held out as val
    dfdc_val_fraction: float = 0.1  # share of each chunk's clusters (an original and its fakes) held out as val
    dfdc_test_fraction: float = 0.1
    decode_threads: int = 1  # FFmpeg decoding threads per worker (0: FFmpeg's choice)
    workers: int = 2  # processes, one video at a time each
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass
class AugmentConfig:
    """Training augmentation, applied identically to every frame of a clip."""

    hflip: float = 0.5  # probability of a horizontal flip
    color_jitter: float = 0.1  # max relative change of brightness, contrast and saturation
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])  # random resized crop, area fraction
    # Specialists that study compression and resampling: integer-offset crops only, no resizing, no
    # re-compression. Remove a name to let recompress_prob / resample_prob / resized crops apply to it.
    preserve_pixels: list[str] = field(default_factory=lambda: ["cm", "rr"])
    recompress_prob: float = 0.0  # JPEG re-compression (quality 60-95) for the other specialists
    resample_prob: float = 0.0  # down- and up-scaling by up to 2x for the other specialists


@dataclass
class DataConfig:
    """The training and evaluation input pipeline over the WebDataset shards (see shards/FORMAT.md)."""

    batch_size: int = 32  # micro-batch per rank
    eval_batch_size: int = 64
    workers: int = 4  # loader worker processes per rank
    prefetch: int = 2  # batches prefetched per worker
    shuffle_buffer: int = 256  # clips held per worker for shuffling (frame models: their frame samples)
    # Frame specialists (LL, BG, CM, RR) train on this many distinct frames of each clip they read, as separate
    # samples (at most the clip's frames; interceptor/data/frame_samples.py), and an epoch counts those samples.
    # 8 reads each frame once per use; 1 reads a whole clip (8 frames at production settings) to train on one.
    frame_samples_per_clip: int = 8
    # Class balance: "stream" mixes one stream per class by class_mix weights (WeightedRandomSampler's
    # equivalent); "loss" samples plainly and weights the loss (ce or focal) by the manifests' class counts.
    balance: Literal["stream", "loss"] = "stream"
    class_mix: list[float] = field(default_factory=lambda: [0.5, 0.5])  # real, fake
    # "resample": every rank and worker draws shards with replacement (never runs dry, any shard count);
    # "partition": shards are split between ranks and workers; fewer shards than ranks x workers is an error.
    sampling: Literal["resample", "partition"] = "resample"
    # Share of the fake draws that are pseudo-fakes: real clips altered on the fly with an artifact of the
    # specialist's own family (interceptor/pseudo_fakes.py, Self-Blended-Images style); needs balance=stream.
    pseudo_fakes: float = 0.5
    steps_per_epoch: int = 0  # optimizer steps per epoch; 0 = the training samples / global batch
    eval_frames: Literal["middle", "all"] = "middle"  # frame models at evaluation: the clip's middle frame, or all
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrainConfig:
    """The DeepSpeed trainer (``launcher/train.py``)."""

    seed: int = 0
    # Deterministic kernels (torch.use_deterministic_algorithms; cuDNN's deterministic algorithms, no autotuning):
    # on a CPU the same seed then gives bit-identical weights at no cost; on a GPU a few kernels have no
    # deterministic form and only warn (docs/models.md, "Reproducibility"), and autotuning is lost.
    deterministic: bool = False
    epochs: int = 6
    lr: float = 1e-4  # peak learning rate (a curriculum stage sets it from its own lr)
    lr_scale: float = 1.0  # multiplies every stage's lr (e.g. for a larger global batch, or a backbone from scratch)
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up, capped at a tenth of the run's optimizer steps
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    grad_accum: int = 1
    loss: Literal["ce", "focal", "weighted_ce"] = "ce"
    focal_gamma: float = 2.0
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto"  # auto: fp16 on GPU, fp32 on CPU
    zero_stage: int = 0  # DeepSpeed ZeRO stage 0, 1 or 2
    deepspeed_config: str = "configs/deepspeed/default.json"
    channels_last: bool = False  # inputs (so activations) in channels_last memory format: faster convs on GPU
    compile: bool = False  # torch.compile the model
    log_every: int = 10  # optimizer steps between scalar logs
    eval_every: int = 0  # optimizer steps between evaluations; 0 = at every epoch end only
    checkpoint_every: int = 500  # optimizer steps between checkpoints (and one at every epoch end)
    keep_last: int = 2  # checkpoints kept besides the best
    max_nonfinite_steps: int = 20  # consecutive micro-batches with a non-finite loss (each skipped) before the run
    # fails as diverged; 0 fails at the first
    # Validation metric that picks the best model (higher is better); "last": every evaluation's model replaces it
    # (the end of the run), for validation sets too small to select on.
    selection_metric: str = "video_mean_auc"
    threshold: float = 0.5  # decision threshold stored with the exported model
    confident_min_clips: int = 11  # DFDC-winner "confident" video aggregation: min confident clips
    sample_images: int = 8  # crops written to TensorBoard at each evaluation


@dataclass
class StageConfig:
    """One curriculum stage: what to train and validate on, and how."""

    id: int
    name: str
    train: list[str]  # shard sets relative to --shards; "{chunk}" is replaced by the chunk number (two digits)
    val: list[str]  # validation shard sets: model selection uses these only, never a test split
    epochs: int
    lr: float
    loss: Literal["ce", "focal", "weighted_ce"] = "ce"
    chunks: list[int] = field(default_factory=list)  # run the stage once per chunk, in this order
    init: Literal["previous", "none"] = "previous"  # start from the previous stage's best model, or from scratch
    # Extra dotted overrides for this stage only; "spec:key=value" applies to that specialist alone.
    overrides: list[str] = field(default_factory=list)
    # A distillation stage: the previous stage's best model teaches a student built with distill.model (from
    # scratch); its best becomes the <spec>_model_student artifact and later stages keep the teacher's chain.
    distill: bool = False


@dataclass
class CurriculumConfig:
    """The training curriculum (``configs/curriculum.yaml``)."""

    stages: list[StageConfig] = field(default_factory=list)
    # Shard sets evaluated after every stage for the cross-dataset matrix (globs allowed).
    eval_sets: list[str] = field(default_factory=list)


@dataclass
class DistillConfig:
    """Knowledge distillation into a lighter student (curriculum stages with ``distill: true``)."""

    model: dict[str, Any] = field(default_factory=lambda: {"backbone": "efficientnet_b0"})  # student's model.* keys
    temperature: float = 4.0  # softens teacher and student logits
    alpha: float = 0.7  # weight of the soft-target loss; the labels' cross-entropy gets 1 - alpha


@dataclass
class ParallelConfig:
    """Several specialists at once (``--specialist all``): how the devices are split between them."""

    devices: int = 0  # 0: the processes torchrun started, else every GPU (1 process on a CPU machine)
    group_size: int = 0  # devices per specialist; 0: an equal share (at least 1), the rest queue


@dataclass
class ModelConfig:
    """The detectors (``interceptor.models.build_model``): backbone, input contract, fusion and classifier."""

    backbone: str = "efficientnet_b4"  # any timm CNN; its last-stage feature map feeds the fusion
    pretrained: bool = False  # timm's own pretrained weights (must be reachable); set true for real training
    pretrained_path: str | None = None  # local backbone weights (.safetensors, or a .pt/.pth state dict)
    image_size: int = 380  # side of the square face crop in pixels (any size works; this one is the default)
    context_margin: float = 0.333  # context around the face box, per side, as a fraction of the box side: shards.margin
    frames_per_clip: int = 8  # T: frames in a clip for TM and AV (the models accept any T >= 2)
    clip_seconds: float = 0.64  # time a clip spans: its frames are clip_seconds / T apart
    audio_rate: int = 16000  # AV waveform sample rate in Hz
    backbone_frames: int = 1  # frames of a clip the backbone sees, evenly spaced, features averaged; 1 = centre
    fusion_dim: int = 256  # common width of the backbone and specialist tokens
    fusion_heads: int = 8  # attention heads of the fusion
    classifier_hidden: list[int] = field(default_factory=lambda: [512, 256])  # hidden widths of the MLP head
    dropout: float = 0.3  # dropout in the fusion and the classifier


@dataclass
class AgentConfig:
    """The weighted-vote ensemble of the specialists (``interceptor eval`` fits it, ``predict`` applies it)."""

    method: Literal["stacking", "auc", "fixed"] = "stacking"  # how the vote weights are chosen on validation
    # method=fixed (and predict without a fitted agent.json): per specialist, a weight that replaces the one it
    # declares (its vote_weight: CM 2.0, the others 1.0)
    fixed_weights: dict[str, float] = field(default_factory=dict)
    fit_sets: list[str] = field(default_factory=lambda: ["ffpp/val", "celebdf/val", "dfdc/chunk-*/val"])
    threshold: float = 0.5  # P(fake) at or above which a video is called fake


@dataclass
class EvalConfig:
    """``interceptor eval``: which shard sets to report on."""

    splits: list[str] = field(default_factory=lambda: ["ffpp/test", "celebdf/test", "dfdc/chunk-*/test"])
    # Where the specialization matrix takes each fake's artifact families from: a synthetic corpus's
    # synth_manifest.json; None uses the manipulation method (FF++ method, Celeb-synthesis, DFDC) instead.
    families: str | None = None
    # A video with several faces: its P(fake) is its most suspicious face's ("max": a fake may swap one face of
    # several) or the faces' mean ("mean"). Used by eval, the trainer's video metrics and predict alike.
    face_aggregation: Literal["max", "mean"] = "max"


@dataclass
class PredictConfig:
    """``interceptor predict``: the agent's verdict on video files (docs/predict.md).

    Clips are cut as the shard builder cuts its val and test clips (``shards``: crop size, margin, frames,
    stride, ``eval_clips_per_video``), with this section's face detector and decoding threads.
    """

    models_dir: str = "demo/models"  # <spec>_model/ exports and agent.json; the demo writes demo/models
    # Face detection on any video: the production settings, not shards.detector, which the demo tunes to its
    # 180p synthetic faces (its min_face 0.2 misses 1080p DFDC faces, about a tenth of the frame height).
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    decode_threads: int = 0  # FFmpeg decoding threads (0: FFmpeg's choice; predict decodes one video at a time)


@dataclass
class Config:
    """The whole configuration of an Interceptor run."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    curriculum: str = "configs/curriculum.yaml"  # file holding the stages
    # Importable modules (on PYTHONPATH or installed) that define specialists of your own, imported when the
    # config loads, in every process (launcher, export, eval, predict): see interceptor/models/registry.py
    specialist_modules: list[str] = field(default_factory=list)
