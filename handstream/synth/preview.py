"""Contact sheets of synthetic frames with their ground truth drawn on them.

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21).

:func:`draw_labels` draws one view's labels on its image: the skeleton in the finger colours of
:mod:`handstream.skeleton`, visible joints as filled dots, occluded joints as rings (white: self,
orange: by the other hand, grey: by the scene), out-of-frame joints not at all, and each hand's box of
visible pixels with an ``L`` / ``R`` tag, over the image (translucent). :func:`contact_sheet` tiles
frames (rows) x views (columns), plus a zoomed, undrawn crop of the hands per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from handstream.skeleton import HAND_CONNECTIONS, JOINT_COLORS, connection_color
from handstream.synth.generator import SynthFrame, SynthGenerator
from handstream.synth.render import Visibility

_RING = {
    Visibility.SELF_OCCLUDED: (255, 255, 255),
    Visibility.OCCLUDED_BY_OTHER_HAND: (0, 140, 255),
    Visibility.OCCLUDED_BY_SCENE: (140, 140, 140),
}
_HAND_BOX = ((255, 160, 60), (60, 60, 255))  # left: blue, right: red (BGR)


def draw_labels(
    image: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    boxes: np.ndarray | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw one view's ground truth.

    Args:
        image: (h, w) or (h, w, 3) uint8 (not modified).
        keypoints: (H, K, 2) pixels; visibility: (H, K) codes; boxes: (H, 4) or None.
        scale: the image is resized by this factor first (drawing stays crisp).
    Returns:
        (h * scale, w * scale, 3) uint8 BGR.
    """
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    if scale != 1.0:
        base = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    img = base.copy()
    s = scale
    shift = 4  # sub-pixel drawing
    f = float(1 << shift)

    def pt(p: np.ndarray) -> tuple[int, int]:
        return int(round((p[0] + 0.5) * s * f - 0.5 * f)), int(round((p[1] + 0.5) * s * f - 0.5 * f))

    for h in range(len(keypoints)):
        kp, vis = keypoints[h], visibility[h]
        inside = vis != Visibility.OUT_OF_FRAME
        for a, b in HAND_CONNECTIONS:
            if inside[a] and inside[b]:
                cv2.line(img, pt(kp[a]), pt(kp[b]), connection_color((a, b)), 1, cv2.LINE_AA, shift)
        for k in range(len(kp)):
            if not inside[k]:
                continue
            if vis[k] == Visibility.VISIBLE:
                cv2.circle(img, pt(kp[k]), int(2.5 * f), JOINT_COLORS[k], -1, cv2.LINE_AA, shift)
            else:
                cv2.circle(img, pt(kp[k]), int(2.5 * f), _RING[Visibility(int(vis[k]))], 1, cv2.LINE_AA, shift)
        if boxes is not None and np.all(np.isfinite(boxes[h])):
            x0, y0, x1, y1 = (boxes[h] * s).astype(int)
            cv2.rectangle(img, (x0, y0), (x1, y1), _HAND_BOX[h], 1)
            cv2.putText(
                img, "LR"[h], (x0 + 2, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _HAND_BOX[h], 1, cv2.LINE_AA
            )
    # a translucent overlay keeps the hands visible under the drawing
    return cv2.addWeighted(img, 0.7, base, 0.3, 0.0)


def _caption(img: np.ndarray, text: str) -> None:
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)


def _zoom(frame: SynthFrame, height: int) -> np.ndarray | None:
    """The hands, enlarged and without drawing, from the view where their joints spread the most."""
    lab = frame.labels
    best, best_extent = None, 0.0
    for v in range(len(frame.images)):
        inside = lab.visibility[v] != Visibility.OUT_OF_FRAME
        if inside.sum() < 10:
            continue
        pts = lab.keypoints_2d[v][inside]
        extent = float(np.ptp(pts[:, 0]) + np.ptp(pts[:, 1]))
        if extent > best_extent:
            best, best_extent = v, extent
    if best is None:
        return None
    pts = lab.keypoints_2d[best][lab.visibility[best] != Visibility.OUT_OF_FRAME]
    img = frame.images[best]
    h, w = img.shape[:2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    side = max(x1 - x0, y1 - y0) * 1.3 + 24
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    xa, xb = int(max(cx - side / 2, 0)), int(min(cx + side / 2, w))
    ya, yb = int(max(cy - side / 2, 0)), int(min(cy + side / 2, h))
    crop = img[ya:yb, xa:xb]
    if crop.size == 0:
        return None
    crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop
    s = height / crop.shape[0]
    crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    crop = np.ascontiguousarray(crop[:, : 2 * height])
    _caption(crop, f"view {best}, hands x{s:.1f}")
    return crop


def contact_sheet(
    frames: Sequence[SynthFrame],
    camera_names: Sequence[str],
    tile_width: int = 420,
    title: str | None = None,
    zoom: bool = True,
) -> np.ndarray:
    """Frames as rows, views as columns, ground truth drawn; a caption on each tile and a legend.

    With ``zoom``, each row ends with the hands enlarged (undrawn) from the view where they are largest.

    Returns:
        (h, w, 3) uint8 BGR image.
    """
    rows = []
    for frame in frames:
        tiles = []
        for v, img in enumerate(frame.images):
            s = tile_width / img.shape[1]
            lab = frame.labels
            tile = draw_labels(img, lab.keypoints_2d[v], lab.visibility[v], lab.hand_box[v], s)
            _caption(tile, f"{camera_names[v]}  frame {frame.index}")
            tiles.append(tile)
        height = max(t.shape[0] for t in tiles)
        extra = _zoom(frame, height) if zoom else None
        if extra is not None:
            tiles.append(extra)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 2), (0, 0))) for t in tiles]
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows]
    items = [
        ("dot: visible", (200, 200, 200)),
        ("white ring: self-occluded", _RING[Visibility.SELF_OCCLUDED]),
        ("orange ring: occluded by the other hand", _RING[Visibility.OCCLUDED_BY_OTHER_HAND]),
        ("grey ring: occluded by the scene", _RING[Visibility.OCCLUDED_BY_SCENE]),
        ("boxes: L blue, R red", (255, 255, 255)),
    ]
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    lines: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    x = 6
    for text, color in items:
        w = cv2.getTextSize(text, font, size, 1)[0][0]
        if x + w > width - 6 and lines[-1]:
            lines.append([])
            x = 6
        lines[-1].append((text, color, x))
        x += w + 24
    legend = np.full((20 * (len(lines) + (1 if title else 0)) + 6, width, 3), 30, np.uint8)
    y = 16
    if title:
        cv2.putText(legend, title, (6, y), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        y += 20
    for line in lines:
        for text, color, x in line:
            cv2.putText(legend, text, (x, y), font, size, color, 1, cv2.LINE_AA)
        y += 20
    return np.vstack(rows + [legend])


def pick_frames(gen: SynthGenerator, count: int, search: int = 600, min_views: int = 2) -> list[int]:
    """Frame indices worth previewing: both hands in view of at least ``min_views`` cameras, spread out.

    Only the motion is evaluated (no rendering); falls back to evenly spaced frames.
    """
    rig = gen.preset.rig
    good = []
    for i in range(0, search, 5):
        hands = gen.hands(i)
        seen = 0
        for cam in rig:
            ok = True
            for hand in hands:
                uv = cam.project(hand.joints)
                inside = np.isfinite(uv).all(axis=1) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width)
                inside &= (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
                ok &= inside.mean() > 0.9
            seen += ok
        if seen >= min_views:
            good.append(i)
    if len(good) < count:
        good = sorted(set(good) | set(range(0, search, max(search // max(count, 1), 1))))
    picks = [good[int(round(j))] for j in np.linspace(0, len(good) - 1, count)] if good else list(range(count))
    return sorted(set(picks))[:count]


def preview(gen: SynthGenerator, count: int = 4, tile_width: int = 420) -> np.ndarray:
    """A contact sheet of ``count`` frames of ``gen`` (see :func:`pick_frames`)."""
    frames = [gen.frame(i) for i in pick_frames(gen, count)]
    p = gen.preset
    title = f"handstream synth preview: rig {p.name} ({p.description}), seed {gen.seed}"
    return contact_sheet(frames, p.rig.names, tile_width, title)
