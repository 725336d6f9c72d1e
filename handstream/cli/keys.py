"""``handstream keys``: CURVE keys for serving beyond this host."""

from __future__ import annotations

from pathlib import Path

import typer


def keys_command(
    directory: Path = typer.Argument(..., help="Folder for the key files (created)."),
) -> None:
    r"""Create CURVE keys for serving beyond this host (engine = server, captures/subscribers = clients).

    Example: handstream keys ~/.handstream/keys  then  serve with \[endpoints] curve_dir = "~/.handstream/keys"
    """
    from handstream.transport import generate_keys

    generate_keys(directory)
    print(f"wrote CURVE keys to {directory}: server.key(_secret), client.key(_secret), authorized_clients/")
