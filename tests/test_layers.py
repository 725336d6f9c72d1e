"""The package's layering (docs/architecture.md, "Layers"): modules import only downward, no import cycle,
typer only in the CLI, long modules say why they are long.

An AST walk over ``handstream/`` (every ``import``, at module level or inside a function: a lazy import is
still a dependency). A module imports from its own package freely; across packages only from a lower layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "handstream"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "skeleton"),  # 0: the one error type; the 21-joint hand
    # 1: plain helpers, NumPy at most (the package's root holds only the version)
    ("handstream", "records", "machine", "pacing", "runtime", "metrics", "openxr"),
    ("poses", "tables"),  # 2: the result types (PoseMessage, HandPose); poses as a table (CSV, Parquet)
    ("ops",),  # 3: the compiled kernels and their NumPy references
    ("geometry",),  # 4: cameras, rigs, calibration files
    ("models", "synth", "transport"),  # 5: networks and manifests; synthetic data; the wire and sockets
    ("config",),  # 6: the serve config (TOML -> dataclasses)
    ("capture",),  # 7: frame sources, capture processes, recordings
    ("engine",),  # 8: the pipeline's stages, backends, the engine process, offline runs
    ("serve", "client", "mediapipe", "export", "bridges"),  # 9: supervisor, subscriber API, peer, export, bridges
    # 10: training, evaluation, annotated videos, session recorder, the browser view (it speaks the bridges' JSON)
    ("train", "eval", "annotate", "record", "view"),
    ("adapt", "bench"),  # 11: adaptation (it trains), the benchmark (it serves)
    ("cli",),  # 12: the command line
)
"""Bottom to top. The first name under ``handstream.`` decides a module's unit; units in one layer do not
import each other."""

LONG_MODULE = 600
"""Lines above which a module's docstring must say why it is one module ("Why one module: ...")."""


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Modules of ``handstream`` that ``module`` imports (any depth in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base_mod = ".".join(base + ([node.module] if node.module else []))
            else:
                base_mod = node.module or ""
            names = [f"{base_mod}.{a.name}" if f"{base_mod}.{a.name}" in MODULES else base_mod for a in node.names]
        else:
            continue
        for n in names:
            if n == "handstream" or n.startswith("handstream."):
                r = _resolve(n)
                if r is not None and r != module:
                    out.add(r)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return "handstream" if len(parts) == 1 else parts[1]


def _layer(unit: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"handstream.{unit} is in no layer of tests/test_layers.py (add it where it belongs)")


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(_unit(m))


def test_modules_import_only_downward():
    bad = []
    for m, deps in sorted(GRAPH.items()):
        um = _unit(m)
        for d in sorted(deps):
            ud = _unit(d)
            if ud == um:
                continue
            if _layer(ud) >= _layer(um):
                bad.append(f"{m} (layer {_layer(um)}) imports {d} (layer {_layer(ud)})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    # Tarjan's strongly connected components over module -> imported module
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    # a package's __init__ re-exporting its own modules, which import the package's public names back, is how
    # Python packages are built; a cycle that leaves the package is a knot
    knots = [
        c for c in cycles if len({_unit(m) for m in c}) > 1 or not any(MODULES[m].name == "__init__.py" for m in c)
    ]
    assert not knots, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in knots)


def test_typer_only_in_the_cli():
    users = []
    for m, p in MODULES.items():
        if _unit(m) == "cli":
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "typer" or n.startswith("typer.") for n in names):
                users.append(m)
    assert not users, f"library modules import typer (only handstream.cli may): {sorted(set(users))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_long_modules_say_why(module):
    path = MODULES[module]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines <= LONG_MODULE:
        return
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "Why one module:" in doc, (
        f"{path.relative_to(ROOT.parent)} has {lines} lines (> {LONG_MODULE}): split it by concern, or say at its "
        "top why it is one module ('Why one module: ...')"
    )
