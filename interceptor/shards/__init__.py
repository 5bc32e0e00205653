"""WebDataset shards from the raw datasets: per-video face clips (:func:`extract_clips`) and the builder."""

from interceptor.shards.extract import Clip, VideoClips, extract_clips
from interceptor.shards.track import FaceTrack
from interceptor.shards.video import VideoError

__all__ = ["Clip", "FaceTrack", "VideoClips", "VideoError", "extract_clips"]
