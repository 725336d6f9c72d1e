"""Read and write camera calibrations in the formats people already have.

=================  ===========================  =====================================================
extension          format                       notes
=================  ===========================  =====================================================
``.toml``          aniposelib CameraGroup TOML  read + write; ``fisheye = true`` tables supported
``.yaml .yml       OpenCV ``cv2.FileStorage``   read + write (handstream layout); also reads the
.xml``                                          single-camera, ROS and stereoCalibrate layouts
``.json``          AssemblyHands / Nimble JSON  read only; default ``unit_scale`` 1e-3 (mm -> m),
                                                default ``cameras="egocentric"``
=================  ===========================  =====================================================

Other extensions are recognised by content. docs/calibration.md shows an example of each format.

OpenCV FileStorage layouts that are read (the first that matches wins):

* handstream: ``cameras``, a list of maps with ``name``, ``width``, ``height``, ``model``
  (pinhole | opencv | fisheye), ``K`` 3x3, ``dist`` (optional), ``R`` 3x3 or Rodrigues 3, ``t`` 3.
  This is what :func:`save_calibration` writes.
* stereoCalibrate output: ``K1``, ``D1``, ``K2``, ``D2``, ``R``, ``T`` and the image size; camera
  ``cam1`` is the world frame and ``cam2`` has ``X_cam2 = R X_cam1 + T``.
* one camera (OpenCV's calibration sample, ROS camera_info): ``camera_matrix``,
  ``distortion_coefficients``, ``image_width``, ``image_height``; fisheye when ``fisheye_model`` is
  non-zero or ``distortion_model`` is ``equidistant``.

The image size may be given as ``image_width``/``image_height``, ``width``/``height`` or
``image_size``/``imageSize`` ([w, h]). Matrices may be ``!!opencv-matrix``, ROS ``{rows, cols, data}``
maps, or plain (nested) lists.

``unit_scale`` multiplies every translation as it is read (metres per file unit): 1.0 for TOML and
YAML, 1e-3 for AssemblyHands JSON (millimetres). Saving writes the rig's own units.

Every problem with a file raises :class:`~handstream.errors.HandstreamError` naming the file and the
field, e.g. ``calibration.toml: cam_1.matrix: expected a 3x3 matrix, got 2 rows``.

Why one module: one reader and one writer per format, all built on the same field checks (``_rotation``,
``_vector``, ``_make_camera``) that make every error name the file and the field; a module per format would
import those checks from a third and save a reader nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tomli_w

from handstream.errors import HandstreamError
from handstream.geometry.camera import (
    Camera,
    _unit_scale,
    as_float_array,
    as_image_size,
    matrix_to_rodrigues,
    rodrigues_to_matrix,
    rotation_error,
)
from handstream.geometry.ovfisheye import fit_fisheye_to_ovfisheye62, ovfisheye62_theta_max
from handstream.geometry.rig import Rig
from handstream.records import natural_key, read_text

_TOML_EXT = {".toml"}
_OPENCV_EXT = {".yaml", ".yml", ".xml"}
_JSON_EXT = {".json"}
CALIBRATION_EXTENSIONS = tuple(sorted(_TOML_EXT | _OPENCV_EXT | _JSON_EXT))
"""File name endings :func:`load_calibration` reads by their extension."""
_GROUPS = ("all", "egocentric", "exocentric")


def load_calibration(
    path: str | Path,
    unit_scale: float | None = None,
    *,
    cameras: str | Sequence[str] | None = None,
) -> Rig:
    """Load a calibration file into a :class:`Rig` (format from the extension, else from the content).

    Args:
        path: a ``.toml`` (aniposelib), ``.yaml``/``.yml``/``.xml`` (OpenCV FileStorage) or ``.json``
            (AssemblyHands) file.
        unit_scale: metres per file length unit; every translation is multiplied by it. None: the
            format's default, 1.0 (TOML, YAML) or 1e-3 (AssemblyHands JSON, millimetres).
        cameras: which cameras to keep, in the order given: a list of names, or ``"all"``. For
            AssemblyHands JSON also ``"egocentric"`` (the default: the 4 head-mounted cameras) or
            ``"exocentric"``. None: all cameras (TOML/YAML), ``"egocentric"`` (JSON).
    Returns:
        The rig; TOML cameras are ordered by natural sort of their table names (cam_2 before cam_10).
    Raises:
        HandstreamError: missing or unreadable file, unknown format, missing/malformed field, unknown
            camera name.
    """
    path = Path(path)
    if not path.is_file():
        raise HandstreamError(f"{path}: calibration file not found")
    kind = _detect_format(path)
    if kind == "json":
        scale = 1e-3 if unit_scale is None else _unit_scale(unit_scale, f"{path}: unit_scale")
        group = "egocentric" if cameras is None else cameras
        cams = _read_assemblyhands_json(path, scale, group)
        return Rig(cams)

    scale = 1.0 if unit_scale is None else _unit_scale(unit_scale, f"{path}: unit_scale")
    cams = _read_toml(path) if kind == "toml" else _read_opencv(path)
    rig = Rig(cams)
    if scale != 1.0:
        rig = rig.scaled(scale)
    if cameras is None or (isinstance(cameras, str) and cameras.lower() == "all"):
        return rig
    if isinstance(cameras, str) and cameras.lower() in _GROUPS:
        raise HandstreamError(
            f"{path}: cameras={cameras!r} is only meaningful for AssemblyHands JSON; "
            f"give a list of camera names (available: {', '.join(rig.names)})"
        )
    return _select_by_name(path, list(rig), cameras)


def save_calibration(rig: Rig, path: str | Path) -> None:
    """Write a rig to ``.toml`` (aniposelib layout) or ``.yaml``/``.yml``/``.xml`` (OpenCV FileStorage).

    Lengths are written in the rig's own units. Loading the file again gives the same cameras bit for bit
    (TOML: R is read back from its exact ``rotation_matrix`` copy, :data:`ROTATION_COPY_EXACT`; the Rodrigues
    vector aniposelib reads is converted without OpenCV's ~1e-12 loss, to ~1e-16).

    Raises:
        HandstreamError: unsupported extension or the file cannot be written.
    """
    path = Path(path)
    if not isinstance(rig, Rig):
        raise HandstreamError(f"{path}: save_calibration expects a Rig, got {type(rig).__name__}")
    ext = path.suffix.lower()
    if ext in _TOML_EXT:
        text = _toml_text(rig)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HandstreamError(f"{path}: cannot write calibration: {exc.strerror}") from None
    elif ext in _OPENCV_EXT:
        _write_opencv(rig, path)
    else:
        raise HandstreamError(
            f"{path}: cannot save calibrations as {ext or 'a file without extension'!r}; "
            "use .toml (aniposelib) or .yaml/.yml/.xml (OpenCV)"
        )


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------


def _detect_format(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in _TOML_EXT:
        return "toml"
    if ext in _OPENCV_EXT:
        return "opencv"
    if ext in _JSON_EXT:
        return "json"
    head = path.read_bytes()[:256].lstrip()
    if head.startswith((b"%YAML", b"<?xml", b"<opencv_storage")):
        return "opencv"
    text = read_text(path)
    try:
        json.loads(text)
        return "json"
    except ValueError:
        pass
    try:
        tomllib.loads(text)
        return "toml"
    except tomllib.TOMLDecodeError:
        pass
    raise HandstreamError(
        f"{path}: unknown calibration format; expected aniposelib .toml, OpenCV .yaml/.yml/.xml or AssemblyHands .json"
    )


def _make_camera(where: str, **fields: Any) -> Camera:
    """Build a Camera, prefixing any validation error with the file location."""
    try:
        return Camera(**fields)
    except HandstreamError as exc:
        raise HandstreamError(f"{where}: {exc}") from None


def _select_by_name(path: Path, cams: list[Camera], names: str | Sequence[str]) -> Rig:
    if isinstance(names, str):
        names = [names]
    by_name = {cam.name: cam for cam in cams}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise HandstreamError(
            f"{path}: cameras: no camera named {', '.join(map(repr, missing))}; available: {', '.join(by_name)}"
        )
    return Rig(by_name[n] for n in names)


def _rotation(value: Any, where: str) -> np.ndarray:
    """A rotation given as a Rodrigues vector (3,) or as a matrix (3, 3)."""
    try:
        is_matrix = np.shape(np.asarray(value, dtype=np.float64)) == (3, 3)
    except (TypeError, ValueError):
        is_matrix = False  # as_float_array below reports what is wrong
    if is_matrix:
        R = as_float_array(value, (3, 3), where)
        if rotation_error(R) > 1e-6:
            raise HandstreamError(f"{where}: expected a Rodrigues vector or a rotation matrix")
        return R
    return rodrigues_to_matrix(as_float_array(value, (3,), where))


def _vector(value: Any, where: str, lengths: Sequence[int]) -> np.ndarray:
    """A flat list of finite numbers whose length is one of ``lengths``."""
    allowed = ", ".join(map(str, lengths[:-1])) + f" or {lengths[-1]}" if len(lengths) > 1 else f"{lengths[0]}"
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise HandstreamError(f"{where}: expected a list of {allowed} numbers, got {value!r:.60}") from None
    if arr.ndim != 1 or arr.size not in lengths:
        got = f"{arr.size} numbers" if arr.ndim == 1 else f"shape {arr.shape}"
        raise HandstreamError(f"{where}: expected a list of {allowed} numbers, got {got}")
    if not np.all(np.isfinite(arr)):
        raise HandstreamError(f"{where}: expected finite numbers, got {arr.tolist()}")
    return arr


# ------------------------------------------------------------------------------------------------
# aniposelib TOML
# ------------------------------------------------------------------------------------------------

_TOML_HEADER = """\
# Camera calibration written by handstream (aniposelib CameraGroup layout).
# size = [width, height] px; matrix = K; distortions = OpenCV [k1, k2, p1, p2, k3(, k4, k5, k6)],
# or [k1, k2, k3, k4] with fisheye = true; rotation = Rodrigues vector; translation = t;
# X_cam = R X_world + t. rotation_matrix repeats R for readers without Rodrigues (rotation wins).

"""


def _read_toml(path: Path) -> list[Camera]:
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise HandstreamError(f"{path}: not valid TOML: {exc}") from None
    tables = {key: value for key, value in data.items() if isinstance(value, dict) and key != "metadata"}
    if not tables:
        raise HandstreamError(f"{path}: no camera tables found; expected [cam_0], [cam_1], ...")
    return [_toml_camera(path, key, tables[key]) for key in sorted(tables, key=natural_key)]


ROTATION_COPY_EXACT = 1e-12
"""A TOML camera's ``rotation_matrix`` within this of its ``rotation`` (max abs element difference) is the same
rotation, and is used as it is: handstream writes R there exactly, while the Rodrigues vector gives it back only
to ~1e-16. A copy further off (up to the 1e-6 that is an error) leaves ``rotation`` authoritative."""


def _toml_camera(path: Path, key: str, table: dict[str, Any]) -> Camera:
    def field(name: str) -> Any:
        if name not in table:
            raise HandstreamError(f"{path}: {key}: missing field {name!r}")
        return table[name]

    def at(name: str) -> str:
        return f"{path}: {key}.{name}"

    name = table.get("name", key)
    if not isinstance(name, str | int) or isinstance(name, bool) or str(name) == "":
        raise HandstreamError(f"{at('name')}: expected a non-empty string, got {name!r}")
    fisheye = table.get("fisheye", False)
    if not isinstance(fisheye, bool):
        raise HandstreamError(f"{at('fisheye')}: expected true or false, got {fisheye!r}")
    if fisheye:
        dist = _vector(field("distortions"), at("distortions"), (4,))
    else:
        dist = _vector(field("distortions"), at("distortions"), (4, 5, 8, 12, 14))
    R = _rotation(field("rotation"), at("rotation"))
    if "rotation_matrix" in table:
        # An optional copy of R for readers without Rodrigues. 'rotation' is authoritative (aniposelib
        # reads only that); a copy that disagrees means someone edited one of the two.
        R_copy = as_float_array(table["rotation_matrix"], (3, 3), at("rotation_matrix"))
        if np.abs(R_copy - R).max() > 1e-6:
            raise HandstreamError(
                f"{at('rotation_matrix')}: does not match 'rotation' (edit both, or delete rotation_matrix)"
            )
        if np.abs(R_copy - R).max() <= ROTATION_COPY_EXACT:
            # the same rotation: the copy is R exactly as written, the vector only to ~1e-16 (a Rodrigues round
            # trip), and an engine's tracker grows such a difference (a replay gives the live session's poses
            # only with the live session's cameras bit for bit, docs/serving.md)
            R = R_copy
    return _make_camera(
        f"{path}: {key}",
        name=str(name),
        size=as_image_size(field("size"), at("size")),
        K=as_float_array(field("matrix"), (3, 3), at("matrix")),
        dist=dist,
        model="fisheye" if fisheye else None,  # None: pinhole when all coefficients are zero
        R=R,
        t=as_float_array(field("translation"), (3,), at("translation")),
    )


def _toml_text(rig: Rig) -> str:
    doc: dict[str, Any] = {}
    for i, cam in enumerate(rig):
        if cam.model == "fisheye":
            dist = cam.dist.tolist()
        elif cam.model == "opencv":
            # aniposelib's usual 5 coefficients unless the rational terms are used
            dist = cam.dist.tolist() if np.any(cam.dist[5:] != 0) else cam.dist[:5].tolist()
        else:
            dist = [0.0] * 5
        table: dict[str, Any] = {
            "name": cam.name,
            "size": [cam.width, cam.height],
            "matrix": cam.K.tolist(),
            "distortions": dist,
            "rotation": matrix_to_rodrigues(cam.R).tolist(),
            "translation": cam.t.tolist(),
            "rotation_matrix": cam.R.tolist(),
        }
        if cam.model == "fisheye":
            table["fisheye"] = True
        doc[f"cam_{i}"] = table
    return _TOML_HEADER + tomli_w.dumps(doc)


# ------------------------------------------------------------------------------------------------
# OpenCV FileStorage (YAML / XML)
# ------------------------------------------------------------------------------------------------


def _write_opencv(rig: Rig, path: Path) -> None:
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    except (cv2.error, SystemError):
        fs = None
    if fs is None or not fs.isOpened():
        raise HandstreamError(f"{path}: cannot write calibration (does the folder exist?)")
    try:
        fs.writeComment("handstream camera calibration: X_cam = R X_world + t; pixels: OpenCV convention")
        fs.writeComment("model: pinhole | opencv (dist k1 k2 p1 p2 k3 k4 k5 k6) | fisheye (dist k1..k4)")
        fs.startWriteStruct("cameras", cv2.FileNode_SEQ)
        for cam in rig:
            fs.startWriteStruct("", cv2.FileNode_MAP)
            fs.write("name", cam.name)
            fs.write("width", cam.width)
            fs.write("height", cam.height)
            fs.write("model", cam.model)
            fs.write("K", np.ascontiguousarray(cam.K))
            if cam.dist.size:
                fs.write("dist", cam.dist.reshape(1, -1))
            fs.write("R", np.ascontiguousarray(cam.R))
            fs.write("t", cam.t.reshape(3, 1))
            fs.endWriteStruct()
        fs.endWriteStruct()
    finally:
        fs.release()


def _read_opencv(path: Path) -> list[Camera]:
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        opened = fs.isOpened()
    except (cv2.error, SystemError) as exc:
        # OpenCV puts the parser's words in the "function" slot, e.g.
        # "... error: (-212:Parsing error) parseValue in function 'calib.yaml(3): Missing , between ...'"
        match = re.search(r"in function '[^']*?\((\d+)\): (.*)'", str(exc.__cause__ or exc))
        suffix = f": line {match.group(1)}: {match.group(2)}" if match else ""
        raise HandstreamError(f"{path}: not a valid OpenCV FileStorage YAML/XML file{suffix}") from None
    if not opened:
        raise HandstreamError(f"{path}: not a valid OpenCV FileStorage file")
    try:
        root = _FsNode(path, fs.root(), "")
        if root.has("cameras"):
            return _opencv_handstream_layout(root.get("cameras"))
        if root.has("K1") and root.has("K2"):
            return _opencv_stereo_layout(root)
        if root.has("camera_matrix"):
            return [_opencv_single_layout(root)]
        raise HandstreamError(
            f"{path}: no calibration found; expected a 'cameras' list (handstream), 'camera_matrix' "
            "(OpenCV / ROS single camera) or 'K1', 'D1', 'K2', 'D2', 'R', 'T' (stereoCalibrate)"
        )
    finally:
        fs.release()


class _FsNode:
    """A cv2.FileNode with its location, for reading fields with clear error messages."""

    def __init__(self, path: Path, node: Any, where: str):
        self.path, self.node, self.where = path, node, where

    def _at(self, key: str) -> str:
        return f"{self.path}: {self.where}{key}"

    def has(self, key: str) -> bool:
        return self.node.isMap() and not self.node.getNode(key).empty()

    def get(self, key: str) -> _FsNode:
        if not self.has(key):
            raise HandstreamError(f"{self.path}: {self.where.rstrip('.') or 'top level'}: missing field {key!r}")
        return _FsNode(self.path, self.node.getNode(key), f"{self.where}{key}.")

    def items(self) -> list[_FsNode]:
        if not self.node.isSeq():
            raise HandstreamError(f"{self.path}: {self.where.rstrip('.')}: expected a list")
        return [_FsNode(self.path, self.node.at(i), f"{self.where.rstrip('.')}[{i}].") for i in range(self.node.size())]

    @property
    def label(self) -> str:
        return f"{self.path}: {self.where.rstrip('.')}"

    def string(self, key: str) -> str:
        sub = self.get(key)
        if not sub.node.isString():
            raise HandstreamError(f"{sub.label}: expected a string")
        return sub.node.string()

    def number(self, key: str) -> float:
        sub = self.get(key)
        if not (sub.node.isInt() or sub.node.isReal()):
            raise HandstreamError(f"{sub.label}: expected a number")
        return sub.node.real()

    def array(self, key: str) -> np.ndarray:
        """A matrix (``!!opencv-matrix``, ROS ``{rows, cols, data}``) or a list of numbers."""
        sub = self.get(key)
        node = sub.node
        if node.isSeq():
            values = []
            for i in range(node.size()):
                item = node.at(i)
                if item.isSeq():  # a nested list: one row
                    values.append([item.at(j).real() for j in range(item.size())])
                elif item.isInt() or item.isReal():
                    values.append(item.real())
                else:
                    raise HandstreamError(f"{sub.label}: expected numbers")
            return np.array(values, dtype=np.float64)
        if node.isInt() or node.isReal():
            return np.array(node.real())
        if node.isMap():
            keys = set(node.keys())
            if {"rows", "cols", "data"} <= keys and "dt" not in keys:  # ROS camera_info layout
                rows, cols = int(node.getNode("rows").real()), int(node.getNode("cols").real())
                data = sub.array("data").ravel()
                if data.size != rows * cols:
                    raise HandstreamError(f"{sub.label}: data has {data.size} numbers, rows x cols = {rows * cols}")
                return data.reshape(rows, cols)
            try:
                mat = node.mat()
            except cv2.error:
                mat = None
            if mat is not None:
                return np.asarray(mat, dtype=np.float64)
        raise HandstreamError(f"{sub.label}: expected a matrix or a list of numbers")


def _opencv_handstream_layout(cameras: _FsNode) -> list[Camera]:
    out = []
    for item in cameras.items():
        model = item.string("model") if item.has("model") else None
        dist = item.array("dist").ravel() if item.has("dist") else np.zeros(0)
        out.append(
            _make_camera(
                item.label,
                name=item.string("name"),
                size=as_image_size([item.number("width"), item.number("height")], f"{item.label}.width/height"),
                K=as_float_array(item.array("K"), (3, 3), f"{item.label}.K"),
                dist=dist,
                model=model,
                R=_fs_rotation(item, "R") if item.has("R") else np.eye(3),
                t=as_float_array(item.array("t").ravel(), (3,), f"{item.label}.t") if item.has("t") else np.zeros(3),
            )
        )
    if not out:
        raise HandstreamError(f"{cameras.label}: the list of cameras is empty")
    return out


def _fs_rotation(node: _FsNode, key: str) -> np.ndarray:
    value = node.array(key)
    where = f"{node.label}.{key}".replace(": .", ": ")
    if value.size == 3:
        return rodrigues_to_matrix(value.ravel())
    return as_float_array(value, (3, 3), where)


def _fs_image_size(node: _FsNode) -> tuple[int, int]:
    """Image size from image_width/image_height, width/height or image_size/imageSize ([w, h])."""
    for w_key, h_key in (("image_width", "image_height"), ("width", "height")):
        if node.has(w_key) and node.has(h_key):
            return as_image_size([node.number(w_key), node.number(h_key)], f"{node.path}: {w_key}/{h_key}")
    for key in ("image_size", "imageSize"):
        if node.has(key):
            return as_image_size(node.array(key).ravel(), f"{node.path}: {key}")
    raise HandstreamError(f"{node.path}: missing the image size; add image_width and image_height (pixels)")


def _fs_model(node: _FsNode) -> str:
    """'fisheye' when the file says so (fisheye_model: 1, or ROS distortion_model: equidistant)."""
    if node.has("fisheye_model") and node.number("fisheye_model"):
        return "fisheye"
    if node.has("distortion_model"):
        name = node.string("distortion_model").lower()
        if name in ("equidistant", "fisheye", "kannala_brandt"):
            return "fisheye"
        if name not in ("plumb_bob", "rational_polynomial", "opencv", "radtan"):
            raise HandstreamError(
                f"{node.path}: distortion_model: expected plumb_bob, rational_polynomial or equidistant, got {name!r}"
            )
    return "opencv"


def _opencv_single_layout(root: _FsNode) -> Camera:
    name = root.string("camera_name") if root.has("camera_name") else "cam0"
    return _make_camera(
        str(root.path),
        name=name,
        size=_fs_image_size(root),
        K=as_float_array(root.array("camera_matrix"), (3, 3), f"{root.path}: camera_matrix"),
        dist=root.array("distortion_coefficients").ravel() if root.has("distortion_coefficients") else (),
        model=_fs_model(root),
    )


def _opencv_stereo_layout(root: _FsNode) -> list[Camera]:
    """stereoCalibrate output: camera 1 is the world frame; X_cam2 = R X_cam1 + T."""
    size = _fs_image_size(root)
    model = _fs_model(root)
    cams = []
    for i in (1, 2):
        is_second = i == 2
        cams.append(
            _make_camera(
                str(root.path),
                name=f"cam{i}",
                size=size,
                K=as_float_array(root.array(f"K{i}"), (3, 3), f"{root.path}: K{i}"),
                dist=root.array(f"D{i}").ravel() if root.has(f"D{i}") else (),
                model=model,
                R=_fs_rotation(root, "R") if is_second else np.eye(3),
                t=as_float_array(root.array("T").ravel(), (3,), f"{root.path}: T") if is_second else np.zeros(3),
            )
        )
    return cams


# ------------------------------------------------------------------------------------------------
# AssemblyHands / Nimble JSON
# ------------------------------------------------------------------------------------------------


def _read_assemblyhands_json(path: Path, unit_scale: float, cameras: str | Sequence[str]) -> list[Camera]:
    try:
        data = json.loads(read_text(path))
    except ValueError as exc:
        raise HandstreamError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise HandstreamError(f"{path}: expected a JSON list of camera objects (AssemblyHands layout)")

    entries = []  # (camera, mounting location)
    used_names: set[str] = set()
    for i, entry in enumerate(data):
        where = f"{path}: [{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Camera"), dict):
            raise HandstreamError(f"{where}: expected an object with a 'Camera' object")
        name = _assemblyhands_name(entry, i, used_names)
        used_names.add(name)
        cam = _assemblyhands_camera(entry["Camera"], f"{where}.Camera", name, unit_scale)
        entries.append((cam, "egocentric" if _is_head_mounted(entry) else "exocentric"))

    if isinstance(cameras, str) and cameras.lower() in _GROUPS:
        group = cameras.lower()
        chosen = [cam for cam, mount in entries if group == "all" or mount == group]
        if not chosen:
            raise HandstreamError(f"{path}: no {group} cameras; use cameras='all' or a list of names")
        return chosen
    return list(_select_by_name(path, [cam for cam, _ in entries], cameras))


def _is_head_mounted(entry: dict[str, Any]) -> bool:
    """True for the headset's cameras.

    ``MountingLocation`` alone is unreliable: in 19 of the 20 AssemblyHands files the 4 head-mounted
    CX3 cameras are labelled "Exocentric". They are the ones mounted on a parent device (``ParentName``,
    the headset, e.g. "cx3-02"), so either mark counts.
    """
    return str(entry.get("MountingLocation", "")).lower() == "egocentric" or bool(entry.get("ParentName"))


def _assemblyhands_name(entry: dict[str, Any], index: int, used: set[str]) -> str:
    """A short, topic-friendly name: ``<ParentName>_<serial>`` (``cx3-02_84358933``) or ``<serial>``."""
    serial = str(entry["Camera"].get("SerialNo", "")).split("_")[0].split(":")[0]
    parent = str(entry.get("ParentName", ""))
    name = "_".join(part for part in (parent, serial) if part) or f"cam{index}"
    return name if name not in used else f"{name}_{index}"


def _assemblyhands_camera(c: dict[str, Any], where: str, name: str, unit_scale: float) -> Camera:
    def number(key: str, default: float | None = None) -> float:
        if key not in c:
            if default is not None:
                return default
            raise HandstreamError(f"{where}: missing field {key!r}")
        value = c[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise HandstreamError(f"{where}.{key}: expected a finite number, got {value!r}")
        return float(value)

    size = as_image_size([number("ImageSizeX"), number("ImageSizeY")], f"{where}.ImageSizeX/ImageSizeY")
    K = np.array([[number("fx"), 0.0, number("cx")], [0.0, number("fy"), number("cy")], [0.0, 0.0, 1.0]])

    if "ModelViewMatrix" in c:  # world -> camera
        M = as_float_array(c["ModelViewMatrix"], (4, 4), f"{where}.ModelViewMatrix")
        field = "ModelViewMatrix"
    elif "T_WorldFromCamera" in c:  # camera -> world (newer Nimble files)
        T = as_float_array(c["T_WorldFromCamera"], (4, 4), f"{where}.T_WorldFromCamera")
        M = np.eye(4)
        M[:3, :3] = T[:3, :3].T
        M[:3, 3] = -T[:3, :3].T @ T[:3, 3]
        field = "T_WorldFromCamera"
    else:
        raise HandstreamError(f"{where}: missing field 'ModelViewMatrix'")
    if np.abs(M[3] - [0, 0, 0, 1]).max() > 1e-9:
        raise HandstreamError(f"{where}.{field}: expected last row [0, 0, 0, 1], got {M[3].tolist()}")

    model_name = c.get("DistortionModel")
    if model_name == "OpenCV":
        dist = [number(k, 0.0) for k in ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")]
        model = "opencv"
    elif model_name == "OVFishEye62":
        radial = np.array([number(f"k{j}") for j in range(1, 7)])
        theta_max = ovfisheye62_theta_max(K, size, radial)
        dist = fit_fisheye_to_ovfisheye62(radial, theta_max)
        model = "fisheye"
    elif model_name in ("PinholePlane", "Pinhole"):
        dist, model = [], "pinhole"
    else:
        raise HandstreamError(
            f"{where}.DistortionModel: expected 'OpenCV', 'OVFishEye62' or 'PinholePlane', got {model_name!r}"
        )
    return _make_camera(where, name=name, size=size, K=K, dist=dist, model=model, R=M[:3, :3], t=M[:3, 3] * unit_scale)
