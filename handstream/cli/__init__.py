"""The ``handstream`` command line: thin wrappers that parse flags, call the library, and print.

:data:`app` (typer) and :func:`main` (the console script's entry point: a user's error -> one line on stderr,
exit 2) are in :mod:`~handstream.cli.app`; one module per command or command group: :mod:`~handstream.cli.serve`,
:mod:`~handstream.cli.subscribe`, :mod:`~handstream.cli.keys`, :mod:`~handstream.cli.bench`,
:mod:`~handstream.cli.export` (``export-engine``), :mod:`~handstream.cli.train`, :mod:`~handstream.cli.eval`,
:mod:`~handstream.cli.adapt`, :mod:`~handstream.cli.synth` (``synth render`` / ``preview``),
:mod:`~handstream.cli.calib` (``calib show`` / ``convert``), :mod:`~handstream.cli.info`. The flags several
commands share are defined once, in :mod:`~handstream.cli.options`. Only this package imports typer
(tests/test_layers.py).

``python -m handstream.cli`` runs :func:`main` (e.g. under ``torchrun``).
"""

from handstream.cli.app import app, main

__all__ = ["app", "main"]
