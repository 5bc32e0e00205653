"""Speech-like audio whose loudness follows the mouth opening.

A talker is a sequence of syllables; each syllable has a loudness contour and a vowel (two formants). The same
syllable plan drives the mouth opening of the rendered face, so real videos are in sync by construction and
the AV artifact (shifted or unrelated audio) breaks that sync measurably.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (F1, F2) formants in Hz of a few vowels.
_VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (640, 1190), (490, 1350))


@dataclass(frozen=True)
class Syllable:
    start: float  # seconds
    duration: float
    amplitude: float
    vowel: int


def plan_syllables(rng: np.random.Generator, seconds: float) -> tuple[Syllable, ...]:
    """A random speech rhythm: syllables of 120-320 ms, short gaps, an occasional pause."""
    syllables, t = [], float(rng.uniform(0.05, 0.3))
    while t < seconds - 0.1:
        duration = float(rng.uniform(0.12, 0.32))
        syllables.append(Syllable(t, duration, float(rng.uniform(0.55, 1.0)), int(rng.integers(len(_VOWELS)))))
        t += duration + float(rng.uniform(0.04, 0.2))
        if rng.random() < 0.12:
            t += float(rng.uniform(0.3, 0.6))
    return tuple(syllables)


def envelope(syllables: tuple[Syllable, ...], times: np.ndarray) -> np.ndarray:
    """Loudness / mouth opening in [0, 1] at ``times`` (seconds): a raised-cosine bump per syllable."""
    env = np.zeros_like(times, dtype=np.float64)
    for syl in syllables:
        phase = (times - syl.start) / syl.duration
        inside = (phase >= 0) & (phase <= 1)
        env[inside] = np.maximum(env[inside], syl.amplitude * np.sin(np.pi * phase[inside]) ** 2)
    return env


_VOICE_RATE = 16000  # the voice is band-limited to 4 kHz: synthesised at 16 kHz, then resampled


def synthesize(
    rng: np.random.Generator, syllables: tuple[Syllable, ...], seconds: float, rate: int, pitch: float
) -> np.ndarray:
    """Mono float32 audio in [-1, 1] at ``rate``: a harmonic voice shaped by formants, gated by the syllables."""
    n = int(round(seconds * _VOICE_RATE))
    times = np.arange(n) / _VOICE_RATE
    env = envelope(syllables, times)
    f0 = pitch * (1 + 0.06 * np.sin(2 * np.pi * 0.8 * times + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / _VOICE_RATE

    # Formants per sample: each syllable's vowel, held until the next syllable.
    f1 = np.full(n, 500.0)
    f2 = np.full(n, 1500.0)
    for syl in syllables:
        start = int(syl.start * _VOICE_RATE)
        f1[start:], f2[start:] = _VOWELS[syl.vowel]

    voice = np.zeros(n)
    for k in range(1, int(4000 // pitch) + 1):
        freq = k * f0
        gain = np.exp(-((freq - f1) ** 2) / (2 * 90.0**2)) + 0.6 * np.exp(-((freq - f2) ** 2) / (2 * 140.0**2))
        voice += (gain + 0.08 / k) * np.sin(k * phase)
    voice *= env
    out_times = np.arange(int(round(seconds * rate))) / rate
    voice = np.interp(out_times, times, voice)
    voice += 0.004 * rng.standard_normal(len(voice))  # room noise
    peak = np.abs(voice).max()
    return (0.5 * voice / peak if peak > 0 else voice).astype(np.float32)
