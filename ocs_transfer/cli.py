"""The ``ocs-transfer`` command.

The group itself is empty: every subcommand, built-in or not, is registered
through the ``ocs_transfer_register_commands`` hook, so plugins extend the CLI
exactly as the core does (the core's own `plugins` command, defined below,
included).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import attrs
import click

from .exceptions import OcsTransferError


class _PluginGroup(click.Group):
    """A group whose subcommands come from the plugin manager, loaded when
    the command line is parsed (not at import)."""

    _loaded_from: object = None  # the plugin state the commands came from
    _added: tuple[str, ...] = ()

    def _load(self) -> None:
        from . import plugins

        state = plugins._get_state()
        if self._loaded_from is state:
            return
        # Plugins were reset (tests, temporary_plugin) since: take the commands again.
        for name in self._added:
            self.commands.pop(name, None)
        commands = plugins.commands()
        for command in commands:
            self.add_command(command)
        self._added = tuple(c.name for c in commands if c.name)
        self._loaded_from = state
        for name, why in plugins.broken_plugins().items():
            click.echo(f"warning: {plugins.broken_message(name, why)}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="ocs-transfer", prog_name="ocs-transfer")
def main(verbose: int) -> None:
    """Move observatory data products to where they are kept and shared."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .redact import install_log_redaction

    install_log_redaction()  # HTTP libraries print session tokens and signatures at DEBUG


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins with their versions and what each registers."""
    from . import plugins

    infos = plugins.list_plugins()
    if as_json:
        broken = [{"name": n, "broken": why} for n, why in sorted(plugins.broken_plugins().items())]
        click.echo(json.dumps([attrs.asdict(i) for i in infos] + broken, indent=2))
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
    for name, why in sorted(plugins.broken_plugins().items()):
        rows.append((name, "-", "-", f"BROKEN, not loaded: {why}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])


def fail(message: str, code: int = 1) -> Any:
    """Print a one-line error and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run() -> None:
    """Console-script entry point: our errors become one readable line."""
    try:
        main(standalone_mode=True)
    except OcsTransferError as exc:
        fail(str(exc), 2)


if __name__ == "__main__":  # pragma: no cover
    run()
