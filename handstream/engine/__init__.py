"""The engine: synchronise frames, estimate 2D heatmaps, decode, triangulate, smooth, publish poses.

``handstream/engine/`` is the *process* that runs models; the model *files* live in ``engines/`` at the
top of the repository.

* :mod:`~handstream.engine.pipeline`: :class:`Pipeline`, every stage in one process (no sockets).
* :mod:`~handstream.engine.sync`: :class:`FrameSync`, frame sets by capture time.
* :mod:`~handstream.engine.smoothing`: :class:`OneEuroFilter`.
* :mod:`~handstream.engine.backends`: ``onnxruntime`` | ``torch`` | ``tensorrt``.
* :mod:`~handstream.engine.process`: :class:`Engine`, the pipeline behind sockets (``python -m handstream.engine``).
"""

from handstream.engine.backends import open_backend
from handstream.engine.pipeline import Detections, Pipeline
from handstream.engine.smoothing import OneEuroFilter
from handstream.engine.sync import FrameSet, FrameSync

__all__ = ["Detections", "FrameSet", "FrameSync", "OneEuroFilter", "Pipeline", "open_backend"]
