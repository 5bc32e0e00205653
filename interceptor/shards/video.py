"""Streaming video and audio decoding with PyAV, and even clip sampling.

Opening a video reads its header and scans its video packets' timestamps (demuxing only, no decoding): that
gives the exact frame count and each frame's index in presentation order before anything is decoded. Then one
demux pass yields the video frames (PyAV frames with their index) interleaved with audio already resampled to
mono int16. Nothing is buffered here, so memory stays bounded whatever the video's length; the caller keeps only
what it needs.

Frames come out *upright*: a phone video stores landscape frames with a display matrix (rotation side data)
that players apply; :class:`UprightFrame` applies it too (90, 180 or 270 degrees), so detection and crops see
the picture as it is shown, and :class:`VideoInfo` gives the upright size.

Frames the caller does not need are not decoded when the codec allows it: with single-threaded decoding, a
packet whose frame is not wanted is decoded with ``skip_frame=NONREF``, so the decoder drops it if no other
frame refers to it (most B-frames of H.264). Wanted frames are decoded exactly as in a full decode.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter


class VideoError(Exception):
    """A video cannot give clips (unreadable, no frames, too short, no face); the message is the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, before decoding."""

    width: int  # upright (displayed) size: the coded size turned by ``rotation``
    height: int
    fps: float
    num_frames: int  # video packets with a timestamp, or the header's count when there are none
    has_audio: bool
    rotation: int = 0  # display rotation, degrees counter-clockwise: 0, 90, 180 or 270
    announced_frames: int = 0  # the frames the stream's header announces (0: it does not say)

    @property
    def missing_frames(self) -> int:
        """Frames the header announces that the file does not hold (cut short: truncated, or partly written)."""
        return max(0, self.announced_frames - self.num_frames)


class UprightFrame:
    """A decoded frame as it is displayed: the coded picture turned by the display rotation.

    ``reformatters`` (shared by the frames of one pass) keeps one FFmpeg scaler per output format and size, so
    that a conversion does not set up a new one for every frame (which costs more than the conversion itself).
    """

    def __init__(self, frame: av.VideoFrame, rotation: int, reformatters: dict | None = None):
        self.frame, self.rotation = frame, rotation
        self.reformatters = {} if reformatters is None else reformatters
        self._rgb: np.ndarray | None = None  # the whole upright RGB picture, once a region needed it
        sideways = rotation in (90, 270)
        self.width, self.height = (frame.height, frame.width) if sideways else (frame.width, frame.height)

    def image(self, format: str, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The upright picture as an array in ``format`` (``rgb24``, ``gray``, ``bgr24``), resized to
        ``width`` x ``height`` (upright pixels) when given, by area averaging (3x faster than FFmpeg's default
        bilinear filter for a 1080p frame shrunk to 640 px, and without its aliasing)."""
        width, height = width or self.width, height or self.height
        coded = (height, width) if self.rotation in (90, 270) else (width, height)
        reformatter = self.reformatters.setdefault((format, coded), VideoReformatter())
        resized = (width, height) != (self.width, self.height)
        array = reformatter.reformat(self.frame, width=coded[0], height=coded[1], format=format,
                                     interpolation="AREA" if resized else None).to_ndarray()
        return np.ascontiguousarray(np.rot90(array, self.rotation // 90)) if self.rotation else array

    def region(self, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        """The RGB pixels of ``[left, right) x [top, bottom)`` (upright pixels, inside the frame), the same as
        the slice of ``image("rgb24")``. An upright 4:2:0 frame converts the region alone (a face's window
        costs a few percent of the whole frame); any other converts the whole frame once."""
        x0, y0, x1, y1 = left - left % 2, top - top % 2, right + right % 2, bottom + bottom % 2
        if self.rotation or self.frame.format.name != "yuv420p" or x1 > self.width or y1 > self.height:
            if self._rgb is None:
                self._rgb = self.image("rgb24")
            return self._rgb[top:bottom, left:right]
        luma, blue, red = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size) for p in self.frame.planes)
        packed = np.concatenate([luma[y0:y1, x0:x1].reshape(-1), blue[y0 // 2:y1 // 2, x0 // 2:x1 // 2].reshape(-1),
                                 red[y0 // 2:y1 // 2, x0 // 2:x1 // 2].reshape(-1)])
        part = av.VideoFrame.from_ndarray(packed.reshape((y1 - y0) * 3 // 2, x1 - x0), format="yuv420p")
        part.colorspace, part.color_range = self.frame.colorspace, self.frame.color_range
        rgb = part.reformat(format="rgb24").to_ndarray()
        return rgb[top - y0:bottom - y0, left - x0:right - x0]


@dataclass(frozen=True)
class AudioChunk:
    """Resampled mono int16 audio; ``start`` counts samples from the first video frame (may be negative)."""

    start: int
    samples: np.ndarray


def plan_clips(num_frames: int, num_clips: int, frames_per_clip: int, stride: int) -> list[list[int]]:
    """Frame indices of ``num_clips`` clips spread evenly over the video (centred in equal segments).

    Clips that would start on the same frame (short videos) are merged, so fewer clips may come back. A video
    shorter than one clip gives none.
    """
    span = (frames_per_clip - 1) * stride + 1
    if num_frames < span:
        return []
    starts = []
    for i in range(num_clips):
        centre = (i + 0.5) * num_frames / num_clips
        start = min(max(0, int(round(centre - span / 2))), num_frames - span)
        if start not in starts:
            starts.append(start)
    return [list(range(start, start + span, stride)) for start in starts]


def _open(path: str):
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(f"cannot open video: {_reason(err)}") from None


def _start_time(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _reason(err: Exception) -> str:
    """A short, path-free reason from an FFmpeg/OS error."""
    text = getattr(err, "strerror", None) or str(err)
    return text.split(": '")[0].strip() or type(err).__name__


class MediaReader:
    """A video file: its :class:`VideoInfo` on construction, then streaming passes with :meth:`read`.

    Errors opening the file raise :class:`VideoError` with FFmpeg's reason.
    """

    def __init__(self, path: str | os.PathLike, audio_rate: int = 16000, threads: int = 1):
        self.path = str(path)
        self.audio_rate = audio_rate
        self.threads = threads
        container = _open(self.path)
        try:
            if not container.streams.video:
                raise VideoError("no video stream")
            video = container.streams.video[0]
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else 0.0
            self._index_of = self._scan_timestamps(container, video)
            num_frames = len(self._index_of) if self._index_of else video.frames
            ctx = video.codec_context
            rotation = self._display_rotation()
            width, height = (ctx.height, ctx.width) if rotation in (90, 270) else (ctx.width, ctx.height)
            self.info = VideoInfo(width=width, height=height, fps=fps, num_frames=int(num_frames),
                                  has_audio=bool(container.streams.audio), rotation=rotation,
                                  announced_frames=int(video.frames or 0))
        finally:
            container.close()
        if self.info.num_frames and not self.info.fps:
            raise VideoError("no frame rate in the video stream")
        self.error: str | None = None
        self.audio_error: str | None = None

    def _display_rotation(self) -> int:
        """The display matrix's rotation (0, 90, 180, 270 degrees counter-clockwise), read from the first frame."""
        with _open(self.path) as container:
            try:
                frame = next(container.decode(container.streams.video[0]), None)
            except av.error.FFmpegError:
                return 0  # no decodable frame: the decoding pass reports it
        degrees = int(round(frame.rotation)) if frame is not None else 0
        if degrees % 90:
            raise VideoError(f"display rotation of {degrees} degrees (only multiples of 90 are supported)")
        return degrees % 360

    @staticmethod
    def _scan_timestamps(container, video) -> dict[int, int] | None:
        """Each video packet's pts mapped to its frame's presentation index; None without timestamps."""
        stamps = set()
        try:
            for packet in container.demux(video):
                if packet.size:
                    if packet.pts is None:
                        return None
                    stamps.add(packet.pts)
        except av.error.FFmpegError:
            pass  # truncated: the frames up to here
        return {pts: i for i, pts in enumerate(sorted(stamps))}

    def read(self, wanted: Callable[[int], bool] | None = None) -> Iterator[tuple[int, UprightFrame] | AudioChunk]:
        """Yield ``(index, frame)`` for video frames (upright) and :class:`AudioChunk` for audio, in demux order.

        ``wanted(index)`` says which frames the caller needs; others may be skipped (see the module's notes).
        A video decoding error ends the pass early (truncated or corrupt data): the frames before it are kept
        and :attr:`error` holds the reason. An audio decoding error only ends the audio (the rest stays
        silent), with the reason in :attr:`audio_error`.
        """
        self.error = self.audio_error = None
        container = _open(self.path)
        try:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            video.codec_context.thread_count = self.threads  # 0: FFmpeg's choice
            skipping = wanted is not None and self._index_of is not None and self.threads == 1
            audio = _AudioCursor(container, self.audio_rate) if container.streams.audio else None
            streams = [video] + ([audio.stream] if audio else [])
            count = 0
            reformatters: dict = {}
            try:
                for packet in container.demux(streams):
                    if packet.stream is video:
                        if skipping and packet.pts in self._index_of:
                            video.codec_context.skip_frame = "DEFAULT" if wanted(self._index_of[packet.pts]) \
                                else "NONREF"
                        for frame in packet.decode():
                            index = self._index_of.get(frame.pts, count) if self._index_of else count
                            count += 1
                            yield index, UprightFrame(frame, self.info.rotation, reformatters)
                    elif self.audio_error is None:
                        try:
                            yield from audio.decode(packet)
                        except (av.error.FFmpegError, ValueError) as err:
                            self.audio_error = _reason(err)
                if audio is not None and self.audio_error is None:
                    yield from audio.flush()
            except (av.error.FFmpegError, ValueError) as err:
                self.error = _reason(err)
        finally:
            container.close()


class _AudioCursor:
    """Decodes audio packets to mono int16 at ``rate``, counting samples from the first video frame."""

    def __init__(self, container, rate: int):
        self.stream = container.streams.audio[0]
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        offset = _start_time(self.stream) - _start_time(container.streams.video[0])
        self.position = int(round(offset * rate))

    def _chunks(self, frames) -> Iterator[AudioChunk]:
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1)
            yield AudioChunk(self.position, samples)
            self.position += len(samples)

    def decode(self, packet) -> Iterator[AudioChunk]:
        for frame in packet.decode():
            yield from self._chunks(self.resampler.resample(frame))

    def flush(self) -> Iterator[AudioChunk]:
        yield from self._chunks(self.resampler.resample(None))


def audio_window(first_frame: int, last_frame: int, fps: float, rate: int) -> tuple[int, int]:
    """The audio samples ``[start, end)`` that play while frames ``first_frame..last_frame`` are shown."""
    start = int(math.floor(first_frame / fps * rate + 0.5))
    end = int(math.floor((last_frame + 1) / fps * rate + 0.5))
    return start, end
