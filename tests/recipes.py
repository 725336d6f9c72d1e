"""Tiny training recipes for tests: the same small network and data tables, the rest per test."""

from __future__ import annotations

TINY_HEAD = """
name = "{name}"
[[data.train]]
path = "{{data}}"
[[data.val]]
path = "{{data}}"
[network]
widths = [8, 16, 16, 16]
depths = [1, 1, 1, 1]
decoder = 16
stem = 8
"""


def tiny_recipe(name: str, rest: str) -> str:
    """A recipe template (``str.format`` fields: ``data`` and whatever ``rest`` has) with a 4-stage network of
    8-16 channels trained and validated on the same dataset, then ``rest`` (the [codec], [train], ... tables)."""
    return TINY_HEAD.format(name=name) + rest.lstrip("\n")
