"""Supervised training of the 2D heatmap estimator (imports torch; the live path never imports this package).

Legend: ``N`` images, ``H`` hands (2), ``K`` joints (21), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size.

* :mod:`~handstream.train.recipe`: TOML recipes -> validated :class:`Recipe`.
* :mod:`~handstream.train.augment`: geometry-exact augmentation (:class:`InputMapping` keeps rays right).
* :mod:`~handstream.train.data`: synthetic per-view items and real 2D-labelled images -> inputs + targets.
* :mod:`~handstream.train.loss`: heatmap + presence loss (handedness-agnostic for unknown-side labels).
* :mod:`~handstream.train.trainer`: the loop (single process or DDP), validation, checkpoints, export.
* :mod:`~handstream.train.cli`: ``handstream train``.
"""
