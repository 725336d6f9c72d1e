"""Evaluation: pose metrics (:mod:`~handstream.metrics`, NumPy) and the end-to-end evaluation of an
exported model on a synthetic dataset (:mod:`~handstream.eval.evaluate`, ``handstream eval``).

Legend: ``V`` views, ``H`` hands (2), ``K`` joints (21); 2D in pixels, 3D in metres (reported in mm).
"""

from handstream import metrics

__all__ = ["metrics"]
