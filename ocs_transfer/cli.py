"""The ``ocs-transfer`` command.

The group itself is empty: every subcommand, built-in or not, is registered
through the ``ocs_transfer_register_commands`` hook, so plugins extend the CLI
exactly as the core does (the core's own `plugins` command, defined below,
included). Commands are registered by dotted path and imported only when they
run, so ``ocs-transfer send`` never pays for the Dropbox helpers.
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
    """A group whose subcommands come from the plugin manager. Only the
    command that runs is imported (``--help`` imports them all, to show
    their help); a command that cannot be imported is reported, not fatal."""

    _warned_for: object = None  # the plugin state whose broken plugins were reported

    def _warn_broken(self) -> None:
        from . import plugins

        state = plugins._get_state()
        if self._warned_for is state:
            return
        self._warned_for = state
        for name, why in plugins.broken_plugins().items():
            click.echo(f"warning: {plugins.broken_message(name, why)}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from . import plugins

        self._warn_broken()
        return sorted({*super().list_commands(ctx), *plugins.command_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from . import plugins

        self._warn_broken()
        own = super().get_command(ctx, cmd_name)
        if own is not None:
            return own
        try:
            return plugins.get_command(cmd_name)  # type: ignore[no-any-return]
        except OcsTransferError as exc:
            click.echo(f"warning: {exc}", err=True)
            return None


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
