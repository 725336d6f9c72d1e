"""Cameras, rigs and calibration files.

* :class:`Camera`: one calibrated camera (pinhole, OpenCV k1..k6 p1 p2, or fisheye k1..k4): projection,
  undistortion, back-projection. ``X_cam = R @ X_world + t``; pixels in OpenCV convention.
* :class:`Rig`: the ordered cameras of a capture setup (the view axis ``V``); projection into all views
  and triangulation (through :func:`handstream.ops.triangulate`).
* :func:`load_calibration` / :func:`save_calibration`: aniposelib TOML, OpenCV YAML/XML, AssemblyHands JSON.

See docs/calibration.md.
"""

from handstream.geometry.camera import Camera
from handstream.geometry.io import load_calibration, save_calibration
from handstream.geometry.rig import Rig

__all__ = ["Camera", "Rig", "load_calibration", "save_calibration"]
