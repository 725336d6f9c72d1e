"""``handstream info``: the installation (versions, native kernels, CUDA devices)."""

from __future__ import annotations

import platform

from rich.console import Console
from rich.table import Table

from handstream import __version__
from handstream.errors import HandstreamError


def info_command() -> None:
    """Show the installation: versions, native kernels, CUDA devices.

    Example: handstream info
    """
    import numpy

    from handstream.ops import _native

    table = Table(show_header=False, box=None)
    table.add_row("handstream", __version__)
    table.add_row("python", platform.python_version())
    table.add_row("numpy", numpy.__version__)
    try:
        _native.cpu()
        table.add_row("C++ kernels (handstream._C)", "built")
    except HandstreamError as exc:
        table.add_row("C++ kernels (handstream._C)", f"[red]{exc}[/red]")
    cuda = _native.cuda()
    if cuda is None:
        table.add_row("CUDA kernels (handstream._cuda)", "not built (no nvcc at install time)")
    else:
        n = cuda.device_count()
        table.add_row("CUDA kernels (handstream._cuda)", f"built; {n} usable device(s)")
    Console().print(table)
