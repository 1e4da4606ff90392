"""Core commands that belong to no single area (``plugins``), registered
through the plugin hooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import click

from .hookspecs import hookimpl


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins with their versions and what each registers."""
    from . import plugins

    infos = plugins.list_plugins()
    if as_json:
        click.echo(json.dumps([attrs.asdict(i) for i in infos], indent=2))
        return
    rows = [("plugin", "package", "version", "registers")]
    for info in infos:
        what = []
        if info.providers:
            what.append("providers: " + ", ".join(info.providers))
        if info.datafile_types:
            what.append("file types: " + ", ".join(info.datafile_types))
        if info.commands:
            what.append("commands: " + ", ".join(info.commands))
        rows.append((info.name, info.package or "-", info.version or "-", "; ".join(what) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])


@hookimpl
def ocs_transfer_register_commands(register: Callable[[Any], None]) -> None:
    register(plugins_command)
