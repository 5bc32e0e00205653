"""Planted forgery artifacts, one family per specialist.

A fake is its original's frames with one or more families applied inside the blended face region (the mask a
face-swap pipeline would paste through), plus its audio for AV. Strengths are drawn from ranges so the task
is learnable but not trivial; the drawn parameters are recorded in the corpus manifest.

- LL: face region luminance and noise that disagree with a low-light scene (brighter/darker, denoised).
- BG: face lighting direction or colour temperature that disagrees with the background.
- AV: audio shifted against, or unrelated to, the mouth motion.
- CM: double compression of the face region (8x8 block-DCT quantisation of luma with the JPEG table, on the
  frame's block grid).
- RR: face region down-scaled and up-scaled (interpolation blur).
- TM: frame-to-frame jitter and flicker of the face region.
"""

from __future__ import annotations

import cv2
import numpy as np

from interceptor.synth.scene import Layers, Scene

FAMILIES = ("LL", "BG", "AV", "CM", "RR", "TM")


def sample_params(family: str, rng: np.random.Generator) -> dict:
    """Random strength parameters of one artifact family (JSON-serialisable)."""
    if family == "LL":
        gain = rng.uniform(1.35, 1.8) if rng.random() < 0.6 else rng.uniform(0.5, 0.7)
        return {"gain": round(float(gain), 3), "denoise": round(float(rng.uniform(0.75, 1.0)), 3)}
    if family == "BG":
        mode = "direction" if rng.random() < 0.5 else "temperature"
        strength = rng.uniform(0.5, 0.9) if mode == "direction" else rng.uniform(0.14, 0.26)
        return {"mode": mode, "strength": round(float(strength), 3), "sign": int(rng.choice([-1, 1]))}
    if family == "AV":
        if rng.random() < 0.5:
            return {"mode": "shift", "seconds": round(float(rng.uniform(0.3, 0.8) * rng.choice([-1, 1])), 3)}
        return {"mode": "unrelated", "seed": int(rng.integers(2**31))}
    if family == "CM":  # scale of the JPEG luminance table: 2.5 is about quality 20, 6 about quality 8
        return {"table_scale": round(float(rng.uniform(2.5, 6.0)), 3)}
    if family == "RR":
        return {"factor": round(float(rng.uniform(1.8, 3.2)), 3)}
    if family == "TM":
        return {"jitter_px": round(float(rng.uniform(0.7, 1.8)), 3), "flicker": round(float(rng.uniform(0.02, 0.05)), 3),
                "seed": int(rng.integers(2**31))}
    raise KeyError(f"unknown artifact family {family!r}")


# The JPEG standard luminance quantisation table (ITU-T T.81, Annex K).
_JPEG_LUMA = np.asarray([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_DCT8 = np.asarray([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)]
                    for k in range(8)], np.float32)


def requantize_luma(rgb: np.ndarray, table_scale: float) -> np.ndarray:
    """Re-compress luma the way JPEG does (8x8 DCT, quantised with the scaled table); chroma is kept."""
    h8, w8 = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
    y = rgb[:h8, :w8] @ np.asarray([0.299, 0.587, 0.114], np.float32)
    blocks = (y - 128).reshape(h8 // 8, 8, w8 // 8, 8).transpose(0, 2, 1, 3)
    step = _JPEG_LUMA * np.float32(table_scale)
    coef = np.round((_DCT8 @ blocks @ _DCT8.T) / step) * step
    y_new = (_DCT8.T @ coef @ _DCT8).transpose(0, 2, 1, 3).reshape(h8, w8) + 128
    out = rgb.copy()
    out[:h8, :w8] += (y_new - y)[..., None]
    return out


def _blend(base: np.ndarray, other: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    return base * (1 - m) + other * m


def apply_visual(families: dict[str, dict], layers: Layers, index: int, scene: Scene) -> np.ndarray:
    """The fake's frame ``index`` as uint8 RGB, from the original's layers.

    Every family works inside the face region (``layers.roi``) only, blended through the face mask.
    """
    rows, cols = layers.roi
    mask = layers.mask[rows, cols]
    clean, noise = layers.clean[rows, cols], layers.noise[rows, cols]
    if "LL" in families:  # pasted face rendered in other light: wrong level, much less sensor noise
        p = families["LL"]
        x0, _, x1, _ = layers.boxes[0]
        shading = cv2.GaussianBlur(clean, (0, 0), sigmaX=max(1.0, 0.15 * (x1 - x0)))  # exposure, not texture
        clean = _blend(clean, clean + (p["gain"] - 1) * shading, mask)
        noise = noise * (1 - p["denoise"] * mask[..., None])
    if "BG" in families:
        p = families["BG"]
        if p["mode"] == "direction":  # light from the opposite side across the face
            x0, _, x1, _ = layers.boxes[0]
            xs = (np.arange(cols.start, cols.stop, dtype=np.float32) - (x0 + x1) / 2) / max(1.0, x1 - x0)
            relight = np.clip(1 - 2 * p["sign"] * p["strength"] * xs, 0.3, 2.0)[None, :, None]
        else:  # colour temperature of another light source
            s = p["sign"] * p["strength"]
            relight = np.asarray([1 + s, 1.0, 1 - s], np.float32)[None, None, :]
        clean = _blend(clean, clean * relight, mask)
    face = clean + noise
    height, width = face.shape[:2]
    if "TM" in families:
        p = families["TM"]
        rng = np.random.default_rng((p["seed"], index))
        dx, dy = rng.normal(0, p["jitter_px"], size=2)
        gain = 1 + rng.normal(0, p["flicker"])
        shifted = cv2.warpAffine(face, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height),
                                 borderMode=cv2.BORDER_REFLECT)
        face = _blend(face, shifted * gain, mask)
    if "RR" in families:
        factor = families["RR"]["factor"]
        small = cv2.resize(face, (max(1, int(width / factor)), max(1, int(height / factor))),
                           interpolation=cv2.INTER_AREA)
        face = _blend(face, cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), mask)
    face = np.clip(face, 0, 255)
    if "CM" in families:  # the region starts on the 8x8 grid, so the blocks align with the frame's
        face = _blend(face, requantize_luma(face, families["CM"]["table_scale"]), mask)
    frame = layers.clean + layers.noise
    frame[rows, cols] = face
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def apply_audio(families: dict[str, dict], audio: np.ndarray, rate: int, unrelated: np.ndarray | None) -> np.ndarray:
    """The fake's audio: unchanged unless the AV family is planted."""
    p = families.get("AV")
    if p is None:
        return audio
    if p["mode"] == "shift":
        return np.roll(audio, int(round(p["seconds"] * rate)))
    if unrelated is None:
        raise ValueError("AV 'unrelated' artifact needs the unrelated audio track")
    return unrelated
