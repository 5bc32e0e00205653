"""Streaming H.264 (+ AAC) MP4 writing with PyAV, atomic: the file appears under its name only when complete."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_AAC_FRAME = 1024


class Mp4Writer:
    """Write RGB frames one at a time; audio (if any) is interleaved in step with the video.

    ``rotation``: display rotation (degrees counter-clockwise) stored as the stream's display matrix; the frames
    written are the coded ones, which a player shows turned by it.

    Encoding is single-threaded so that the same frames give the same bytes (the corpus is deterministic).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: int, crf: int,
                 audio: np.ndarray | None = None, audio_rate: int = 44100, rotation: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.fps = fps
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        if rotation:  # a display matrix, as phones write: players turn the coded frames by ``rotation`` degrees ccw
            self.video.set_display_rotation(rotation)
        self.audio_samples = None
        if audio is not None:
            self.audio = self.container.add_stream("aac", rate=audio_rate, layout="mono")
            self.audio.options = {"threads": "1"}
            self.audio_rate = audio_rate
            self.audio_samples = np.ascontiguousarray(audio, dtype=np.float32)
            self.audio_pos = 0
        self.frames = 0

    def _mux_audio_until(self, seconds: float | None) -> None:
        if self.audio_samples is None:
            return
        end = len(self.audio_samples) if seconds is None else min(len(self.audio_samples), int(seconds * self.audio_rate))
        while self.audio_pos + _AAC_FRAME <= end or (seconds is None and self.audio_pos < end):
            chunk = self.audio_samples[self.audio_pos:self.audio_pos + _AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.audio_rate
            frame.pts = self.audio_pos
            frame.time_base = Fraction(1, self.audio_rate)
            self.audio_pos += len(chunk)
            for packet in self.audio.encode(frame):
                self.container.mux(packet)

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        self.frames += 1
        self._mux_audio_until(self.frames / self.fps)

    def close(self) -> Path:
        for packet in self.video.encode():
            self.container.mux(packet)
        if self.audio_samples is not None:
            self._mux_audio_until(None)
            for packet in self.audio.encode():
                self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self.tmp.unlink(missing_ok=True)
