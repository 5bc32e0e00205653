"""Scenes: a talking face moving over a varied background, rendered frame by frame.

A :class:`Scene` is sampled once per original video; :class:`SceneRenderer` turns it into per-frame layers
(the clean lit image, the sensor noise, the face boxes and the blending mask of the main face) so that fakes
can be derived from exactly the same content. Rendering is streaming: one frame at a time, memory bounded
regardless of resolution and length.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from interceptor.synth.audio import Syllable, envelope, plan_syllables
from interceptor.synth.faces import identity_count, make_sprite, open_mouth

_BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "chelsea", "china", "flower", "hubble", "gradient")


@functools.lru_cache(maxsize=None)
def load_background(name: str) -> np.ndarray:
    """An RGB float32 background texture from images bundled with scikit-image / scikit-learn."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name == "hubble":
        from skimage import data

        image = data.hubble_deep_field()
    elif name == "gradient":
        yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
        image = np.dstack([90 + 0.5 * xx, 110 + 0.3 * yy, 150 - 0.2 * xx]).clip(0, 255)
    else:
        from skimage import data

        image = getattr(data, name)()
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    return np.ascontiguousarray(image[..., :3]).astype(np.float32)


@dataclass(frozen=True)
class Person:
    identity: int
    height: float  # face box height as a fraction of the frame height
    x: float  # face centre, fraction of frame width
    y: float  # face centre, fraction of frame height
    sway: float  # amplitude of horizontal sway, fraction of frame width
    sway_hz: float
    phase: float
    talking: bool


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one original video deterministically."""

    width: int
    height: int
    fps: int
    n_frames: int
    seed: int
    background: str
    pan: tuple[float, float]  # pan speed, fraction of the panorama per second (x, y)
    zoom: float  # zoom amplitude
    zoom_hz: float
    light_gradient: float  # scene light from the left (<0) or right (>0): relative gain across the frame
    colour_gains: tuple[float, float, float]  # scene colour temperature
    brightness_drift: float
    low_light: bool
    low_light_gain: float
    noise_sigma: float
    pitch: float
    people: tuple[Person, ...]
    syllables: tuple[Syllable, ...] = field(repr=False)

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps


def sample_scene(
    rng: np.random.Generator, width: int, height: int, fps: int, seconds: float, *, identity: int,
    two_people: bool = False, low_light: bool = False,
) -> Scene:
    """Draw a scene: background, camera motion, lighting, one talker (and optionally a second person)."""
    n_frames = max(1, int(round(seconds * fps)))
    main_id = identity
    if two_people:
        main = Person(main_id, float(rng.uniform(0.42, 0.5)), float(rng.uniform(0.3, 0.36)),
                      float(rng.uniform(0.47, 0.53)), 0.02, float(rng.uniform(0.2, 0.5)),
                      float(rng.uniform(0, 6.28)), True)
        other_id = (main_id + 1 + int(rng.integers(identity_count() - 1))) % identity_count()
        other = Person(other_id, main.height * float(rng.uniform(0.55, 0.7)), float(rng.uniform(0.74, 0.8)),
                       float(rng.uniform(0.45, 0.55)), 0.01, float(rng.uniform(0.2, 0.5)),
                       float(rng.uniform(0, 6.28)), False)
        people = (main, other)
    else:
        people = (Person(main_id, float(rng.uniform(0.44, 0.56)), float(rng.uniform(0.4, 0.6)),
                         float(rng.uniform(0.47, 0.53)), float(rng.uniform(0.01, 0.04)),
                         float(rng.uniform(0.2, 0.6)), float(rng.uniform(0, 6.28)), True),)
    temp = float(rng.uniform(-0.08, 0.08))
    return Scene(
        width=width, height=height, fps=fps, n_frames=n_frames, seed=int(rng.integers(2**31)),
        background=_BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))],
        pan=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.02, 0.02))),
        zoom=float(rng.uniform(0.0, 0.06)), zoom_hz=float(rng.uniform(0.1, 0.4)),
        light_gradient=float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.45)),
        colour_gains=(1 + temp, 1.0, 1 - temp),
        brightness_drift=float(rng.uniform(0.02, 0.1)),
        low_light=low_light,
        low_light_gain=float(rng.uniform(0.38, 0.5)) if low_light else 1.0,
        noise_sigma=float(rng.uniform(5.0, 8.0)) if low_light else float(rng.uniform(0.5, 1.5)),
        pitch=float(rng.uniform(100, 220)),
        people=people,
        syllables=plan_syllables(rng, n_frames / fps),
    )


@dataclass
class Layers:
    """One rendered frame, before the final clip to 8 bits."""

    clean: np.ndarray  # float32 (H, W, 3): lit scene without sensor noise
    noise: np.ndarray  # float32 (H, W, 3): sensor noise
    boxes: list[tuple[float, float, float, float]]  # face boxes x0, y0, x1, y1, main talker first
    mask: np.ndarray  # float32 (H, W): soft blending mask of the main face (where deepfakes paste)
    roi: tuple[slice, slice]  # rows, columns holding the mask, aligned to the 8x8 block grid
    mouth_opening: float


def face_mask(shape: tuple[int, int], box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A feathered ellipse over the inner face (the region a face-swap pipeline blends) and its region.

    The region is aligned to the frame's 8x8 block grid, so artifacts computed inside it (JPEG blocking)
    line up with the grid of the whole frame.
    """
    h, w = shape
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    pad = int(bw * 0.3) + 2
    ry0, ry1 = max(0, (int(y0) - pad) // 8 * 8), min(h, -(-(int(y1) + pad) // 8) * 8)
    rx0, rx1 = max(0, (int(x0) - pad) // 8 * 8), min(w, -(-(int(x1) + pad) // 8) * 8)
    mask = np.zeros((h, w), np.float32)
    centre = (int(round((x0 + x1) / 2)), int(round(y0 + 0.55 * bh)))
    cv2.ellipse(mask, centre, (max(1, int(0.40 * bw)), max(1, int(0.50 * bh))), 0, 0, 360, 1.0, -1)
    roi = (slice(ry0, ry1), slice(rx0, rx1))
    mask[roi] = cv2.GaussianBlur(mask[roi], (0, 0), sigmaX=max(0.8, 0.05 * bw))
    return mask, roi


class SceneRenderer:
    """Renders a :class:`Scene` one frame at a time (deterministic per frame index)."""

    def __init__(self, scene: Scene):
        self.scene = scene
        w, h = scene.width, scene.height
        texture = load_background(scene.background)
        # A panorama 1.5x the frame, so the camera can pan and zoom without leaving it.
        self.panorama = cv2.resize(texture, (int(w * 1.5), int(h * 1.5)), interpolation=cv2.INTER_AREA)
        xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
        gradient = 1 + scene.light_gradient * xs
        self.light = gradient[None, :, None] * np.asarray(scene.colour_gains, np.float32)[None, None, :]
        times = np.arange(scene.n_frames) / scene.fps
        self.openings = envelope(scene.syllables, times)
        self.sprites = [make_sprite(p.identity) for p in scene.people]

    def _background(self, t: float) -> np.ndarray:
        s = self.scene
        ph, pw = self.panorama.shape[:2]
        zoom = 1 + s.zoom * np.sin(2 * np.pi * s.zoom_hz * t)
        # Window top-left moves with the pan; a triangle wave keeps it inside the panorama.
        def bounce(v: float) -> float:
            v = v % 2.0
            return v if v <= 1 else 2 - v

        max_x, max_y = pw - s.width / zoom, ph - s.height / zoom
        ox = max_x * bounce(0.5 + s.pan[0] * t)
        oy = max_y * bounce(0.5 + s.pan[1] * t)
        affine = np.float32([[1 / zoom, 0, ox], [0, 1 / zoom, oy]])
        return cv2.warpAffine(self.panorama, affine, (s.width, s.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    def _place(self, frame: np.ndarray, index: int, person_index: int, t: float) -> tuple[float, float, float, float]:
        s, person, sprite = self.scene, self.scene.people[person_index], self.sprites[person_index]
        zoom = 1 + s.zoom * np.sin(2 * np.pi * s.zoom_hz * t)
        face_h = person.height * s.height * zoom
        scale = face_h / sprite.face_box[3]
        cx = (person.x + person.sway * np.sin(2 * np.pi * person.sway_hz * t + person.phase)) * s.width
        cy = (person.y + 0.3 * person.sway * np.sin(2 * np.pi * person.sway_hz * 0.7 * t)) * s.height
        fx, fy, fw, fh = sprite.face_box
        tx, ty = cx - scale * (fx + fw / 2), cy - scale * (fy + fh / 2)
        rgba = open_mouth(sprite, float(self.openings[index])) if person.talking else sprite.rgba
        # Warp only onto the sprite's footprint in the frame.
        sh, sw = rgba.shape[:2]
        x0, y0 = max(0, int(np.floor(tx))), max(0, int(np.floor(ty)))
        x1, y1 = min(s.width, int(np.ceil(tx + scale * sw)) + 1), min(s.height, int(np.ceil(ty + scale * sh)) + 1)
        if x1 > x0 and y1 > y0:
            affine = np.float32([[scale, 0, tx - x0], [0, scale, ty - y0]])
            warped = cv2.warpAffine(rgba, affine, (x1 - x0, y1 - y0),
                                    flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = warped[..., 3:4]
            region = frame[y0:y1, x0:x1]
            region *= 1 - alpha
            region += warped[..., :3] * alpha
        return (tx + scale * fx, ty + scale * fy, tx + scale * (fx + fw), ty + scale * (fy + fh))

    def render(self, index: int) -> Layers:
        s = self.scene
        t = index / s.fps
        frame = self._background(t)
        boxes = [None] * len(s.people)
        for p in reversed(range(len(s.people))):  # main talker last, in front
            boxes[p] = self._place(frame, index, p, t)
        drift = 1 + s.brightness_drift * np.sin(2 * np.pi * t / max(s.seconds, 1e-3))
        frame *= self.light * (drift * s.low_light_gain)
        noise_rng = np.random.default_rng((s.seed, index))
        noise = noise_rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(s.noise_sigma)
        mask, roi = face_mask((s.height, s.width), boxes[0])
        return Layers(clean=frame, noise=noise, boxes=boxes, mask=mask, roi=roi,
                      mouth_opening=float(self.openings[index]))
