"""Unsupervised multi-view adaptation: pseudo-labels by cross-view consensus, extrinsics from hands, fine-tuning
rounds."""
