"""The 2D heatmap estimator: its input/output contract, codec, positional encoding and network.

Legend: ``N`` images (views), ``H`` hands (2: left, right), ``K`` joints (21), ``(H_in, W_in)`` network
input size, ``(h, w)`` heatmap size (input size / stride).

Torch-free modules (what the engine imports): :mod:`~handstream.models.preprocess` (frame -> network
input, letterbox mapping), :mod:`~handstream.models.kpe` (per-pixel ray angles from the camera model),
:mod:`~handstream.models.codec` (keypoints <-> heatmaps, decoding through ``handstream.ops``) and
:mod:`~handstream.models.manifest` (the JSON sidecar that describes an exported model).
:mod:`~handstream.models.network` (the PyTorch network) imports torch and is imported only on demand.
"""

from handstream.models.codec import HeatmapCodec
from handstream.models.kpe import ray_angles
from handstream.models.manifest import ModelManifest, load_manifest
from handstream.models.preprocess import Letterbox, prepare_views

__all__ = ["HeatmapCodec", "Letterbox", "ModelManifest", "load_manifest", "prepare_views", "ray_angles"]
