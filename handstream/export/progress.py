"""The steps of an export as they run, on the console of ``handstream export-engine`` (silent without one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    """Step-by-step progress on a rich console (spinner while a step runs, a tick and its time after).

    With ``console=None`` it is silent (library use, tests).
    """

    def __init__(self, console=None):
        self.console = console

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.console is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            with self.console.status(text):
                yield
        except BaseException:
            self.console.print(f"[red]✗[/red] {text}")
            raise
        self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - t0:.1f} s)[/dim]")

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"   {text}")


__all__ = ["Progress"]
