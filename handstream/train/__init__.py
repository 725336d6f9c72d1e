"""Supervised training of the 2D heatmap estimator (imports torch; the live path never imports this package).

Legend: ``N`` images, ``H`` hands (2), ``K`` joints (21), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size.

* :mod:`~handstream.train.recipe`: TOML recipes -> validated :class:`Recipe`.
* :mod:`~handstream.train.augment`: geometry-exact augmentation (:class:`InputMapping` keeps rays right).
* :mod:`~handstream.train.items`: one frame + labels -> input + targets (whole inputs, refiner windows).
* :mod:`~handstream.train.perspective`: perspective crop items (the tracking engine's crop model).
* :mod:`~handstream.train.data`: the datasets (synthetic per-view items, real 2D-labelled images), the sampler.
* :mod:`~handstream.train.loss`: heatmap + presence loss (handedness-agnostic for unknown-side labels).
* :mod:`~handstream.train.loop`: the optimizer steps (schedule, clipping, progress), shared with adaptation.
* :mod:`~handstream.train.trainer`: a run (single process or DDP): data, epochs, validation, checkpoints, export.

``handstream train`` is :mod:`handstream.cli.train`.
"""
