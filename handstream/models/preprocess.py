"""Camera frames -> network input: grey, letterboxed into the input size, scaled to [0, 1].

Legend: ``N`` views, ``(H_in, W_in)`` network input size.

Every frame is resized with one scale per axis chosen so the whole frame fits the input with its aspect
ratio kept, and placed at the top-left corner; the rest is zero. :class:`Letterbox` maps pixel
coordinates both ways with the OpenCV convention (pixel centres at integers), so keypoints predicted in
the input go back to the frame exactly, whatever the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handstream.errors import HandstreamError


@dataclass(frozen=True)
class Letterbox:
    """The mapping between a frame and the network input.

    Attributes:
        frame_size: (width, height) of the camera frame, pixels.
        input_size: (width, height) of the network input, pixels.
        resized: (width, height) of the frame inside the input (the rest is padding).
    """

    frame_size: tuple[int, int]
    input_size: tuple[int, int]
    resized: tuple[int, int]

    @classmethod
    def fit(cls, frame_size: tuple[int, int], input_size: tuple[int, int]) -> Letterbox:
        """The largest aspect-preserving fit of ``frame_size`` into ``input_size`` (both (width, height))."""
        fw, fh = (int(v) for v in frame_size)
        iw, ih = (int(v) for v in input_size)
        if min(fw, fh, iw, ih) < 1:
            raise HandstreamError(f"letterbox: sizes must be positive, got frame {frame_size}, input {input_size}")
        s = min(iw / fw, ih / fh)
        rw, rh = min(iw, max(1, round(fw * s))), min(ih, max(1, round(fh * s)))
        return cls((fw, fh), (iw, ih), (rw, rh))

    @property
    def scale(self) -> np.ndarray:
        """(2,) input pixels per frame pixel along x and y."""
        return np.array([self.resized[0] / self.frame_size[0], self.resized[1] / self.frame_size[1]])

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) frame pixels -> (..., 2) input pixels."""
        return (np.asarray(points, dtype=np.float64) + 0.5) * self.scale - 0.5

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input pixels -> (..., 2) frame pixels (NaN stays NaN)."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self.scale - 0.5


@dataclass(frozen=True)
class InputMapping:
    """Frame pixels <-> network input pixels through an affine map (letterbox + augmentation, or a hand crop).

    Attributes:
        input_size: (W_in, H_in) of the network input, pixels.
        affine: the 2x3 matrix ``A`` (row-major, 6 floats) with ``input = A @ [x_frame, y_frame, 1]``;
            pixel centres at integers (OpenCV convention) on both sides.
    """

    input_size: tuple[int, int]
    affine: tuple[float, float, float, float, float, float]

    @classmethod
    def from_letterbox(cls, box: Letterbox, aug: np.ndarray | None = None) -> InputMapping:
        """The letterbox ``box`` followed by ``aug`` (2x3, input -> input; None: identity)."""
        sx, sy = box.scale
        lb = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        m = lb if aug is None else np.vstack([np.asarray(aug, dtype=np.float64), [0, 0, 1]]) @ lb
        return cls(tuple(int(v) for v in box.input_size), tuple(float(v) for v in m[:2].ravel()))

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) float64 frame -> input."""
        return np.array(self.affine, dtype=np.float64).reshape(2, 3)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) frame pixels -> (..., 2) input pixels (NaN/inf propagate)."""
        m = self.matrix
        p = np.asarray(points, dtype=np.float64)
        return p @ m[:, :2].T + m[:, 2]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input pixels -> (..., 2) frame pixels."""
        m = self.matrix
        inv = np.linalg.inv(m[:, :2])
        p = np.asarray(points, dtype=np.float64) - m[:, 2]
        return p @ inv.T


def to_grey(image: np.ndarray) -> np.ndarray:
    """(h, w) uint8 or (h, w, 3) BGR uint8 -> (h, w) uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise HandstreamError(f"image: expected (h, w) grey or (h, w, 3) BGR, got shape {image.shape}")


def prepare_views(
    images: list[np.ndarray], input_size: tuple[int, int], out: np.ndarray | None = None
) -> tuple[np.ndarray, list[Letterbox]]:
    """Letterbox a list of frames into one network batch.

    Args:
        images: N frames, each (h, w) uint8 grey or (h, w, 3) uint8 BGR; sizes may differ.
        input_size: (W_in, H_in).
        out: optional (>= N, 1, H_in, W_in) float32 buffer to fill (reused by the engine every frame).
    Returns:
        batch (N, 1, H_in, W_in) float32 in [0, 1] (a view of ``out`` when given) and one
        :class:`Letterbox` per frame.
    """
    iw, ih = input_size
    n = len(images)
    if out is None:
        out = np.empty((n, 1, ih, iw), dtype=np.float32)
    batch = out[:n]
    boxes = []
    for i, img in enumerate(images):
        grey = to_grey(np.asarray(img))
        if grey.dtype != np.uint8:
            raise HandstreamError(f"image {i}: expected uint8 pixels, got {grey.dtype}")
        box = Letterbox.fit((grey.shape[1], grey.shape[0]), input_size)
        rw, rh = box.resized
        small = (
            grey
            if (rw, rh) == (grey.shape[1], grey.shape[0])
            else cv2.resize(grey, (rw, rh), interpolation=cv2.INTER_AREA)
        )
        dst = batch[i, 0]
        dst[:rh, :rw] = small
        dst[:rh, :rw] *= 1.0 / 255.0
        if rw < iw:
            dst[:, rw:] = 0.0
        if rh < ih:
            dst[rh:, :] = 0.0
        boxes.append(box)
    return batch, boxes
