"""``ocs-transfer ingest`` and ``ocs-transfer enqueue``.

The queue URL holds a password: give it in ``OCS_TRANSFER_QUEUE_URL`` rather
than on the command line (where ``ps`` shows it). It is never printed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..exceptions import ConfigurationError
from ..settings import Settings

__all__ = ["enqueue_command", "ingest_command"]

log = logging.getLogger("ocs_transfer.ingest")


def _queue_options(func: Any) -> Any:
    func = click.option(
        "--queue-name", required=True, envvar="OCS_TRANSFER_QUEUE_NAME", metavar="NAME",
        help="The queue (NAME.retry.*s and NAME.dead are made beside it) [OCS_TRANSFER_QUEUE_NAME].",
    )(func)  # fmt: skip
    return click.option(
        "--queue",
        "queue_url",
        required=True,
        envvar="OCS_TRANSFER_QUEUE_URL",
        metavar="URL",
        help="amqp://USER:PASS@HOST:PORT/VHOST; better in OCS_TRANSFER_QUEUE_URL, out of `ps`.",
    )(func)


def _delays(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give whole seconds separated by commas, e.g. 5,30,120,600") from None


@click.command("enqueue")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_queue_options
@click.option(
    "-m",
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata merged over each file's headers when it is ingested (repeat).",
)
@click.option(
    "--to",
    "destinations",
    multiple=True,
    metavar="DEST",
    help="Also schedule each file to this destination of the ingester's ledger (repeat).",
)
def enqueue_command(files: tuple[str, ...], queue_url: str, queue_name: str, metadata: tuple[str, ...],
                    destinations: tuple[str, ...]) -> None:  # fmt: skip
    """Announce FILES to the ingest queue: one persistent message per file,
    each confirmed by the broker before this returns. Every file must exist;
    when one does not, nothing is queued."""
    from ..input.cli import _parse_metadata
    from .queue import enqueue

    queued = enqueue(queue_url, queue_name, files, metadata=_parse_metadata(metadata), destinations=destinations)
    for message in queued:
        click.echo(f"queued\t{message.filepath}")


@click.command("ingest")
@_queue_options
@click.option(
    "--to",
    "destinations",
    multiple=True,
    metavar="DEST",
    help="Schedule every file to this ledger destination too (repeat); messages may name more.",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Store files in the configured file store (FILESTORE_TYPE ...); --no-store only schedules.",
)
@click.option("--layout", default=None, help="Layout of the file store (default: the files' archive path).")
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    metavar="DIR",
    help="Take only files under DIR (repeat); messages naming other paths go to NAME.dead.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Files ingested at once.")
@click.option(
    "--retry-delays",
    callback=_delays,
    default="5,30,120,600",
    show_default=True,
    metavar="S,S,...",
    help="Seconds before each retry of a failed message (the last repeats).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Attempts of a message before it goes to NAME.dead.",
)
@click.option("--until-idle", is_flag=True, help="Exit when the queue and its retry queues are empty.")
def ingest_command(
    queue_url: str,
    queue_name: str,
    destinations: tuple[str, ...],
    store: bool,
    layout: str | None,
    roots: tuple[str, ...],
    concurrency: int,
    retry_delays: tuple[int, ...],
    max_attempts: int,
    until_idle: bool,
) -> None:
    """Consume the ingest queue: store each message's file in the file store
    and/or schedule it to destinations; acknowledge the message only when that
    is done. Retryable failures come back after --retry-delays; the others, with
    their reason, go to NAME.dead. SIGTERM finishes the files in hand, then stops."""
    from ..transfer.cli import _ctx, ledger_exists
    from .ingester import Ingester
    from .queue import Topology, consume

    Topology(queue_name, retry_delays)  # bad names and delays are refused before anything connects
    settings: Settings = _ctx().settings
    file_store = None
    if store:
        from ..storage import get_store

        file_store = get_store(settings=settings)
    engine = _ctx().engine() if destinations or ledger_exists(settings) else None
    if file_store is None and engine is None:
        raise ConfigurationError("--no-store needs a ledger to schedule into: give --to DEST (see `ocs-transfer dest`)")
    ingester = Ingester(
        file_store, engine=engine, destinations=destinations, settings=settings, layout=layout, roots=roots
    )
    stats = consume(queue_url, queue_name, ingester, concurrency=concurrency, retry_delays=retry_delays,
                    max_attempts=max_attempts, until_idle=until_idle)  # fmt: skip
    click.echo(
        f"{stats.stored} ingested, {stats.already} already stored, {stats.retried} to retry,"
        f" {stats.dead} to {queue_name}.dead",
        err=True,
    )
    if stats.dead and until_idle:
        sys.exit(1)  # a script that drains the queue should notice what it could not ingest


