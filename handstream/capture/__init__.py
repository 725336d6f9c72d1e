"""Capture processes: one per camera, source -> timestamp -> ``frame.<camera>`` messages to the engine.

Sources (:mod:`handstream.capture.sources`): ``synthetic`` (one camera of a synthetic rig preset),
``video`` (a file), ``images`` (a folder), ``device`` (OpenCV camera index or V4L2 path).
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
