"""Capture processes: one per camera, source -> timestamp -> ``frame.<camera>`` messages to the engine.

Sources (:mod:`handstream.capture.sources`): ``synthetic`` (one camera of a synthetic rig preset: its
pre-rendered loop played from disk, or rendered live), ``video`` (a file), ``images`` (a folder), ``device``
(OpenCV camera index or V4L2 path). Frames made before a run, the benchmark's and the synthetic loop
cache: :mod:`handstream.capture.material`.
"""

from handstream.capture.process import capture_main, run_capture
from handstream.capture.sources import (
    DeviceSource,
    Frame,
    ImageFolderSource,
    Source,
    SyntheticCameraSource,
    VideoSource,
    open_source,
)

__all__ = [
    "DeviceSource",
    "Frame",
    "ImageFolderSource",
    "Source",
    "SyntheticCameraSource",
    "VideoSource",
    "capture_main",
    "open_source",
    "run_capture",
]
