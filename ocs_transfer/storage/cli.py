"""``ocs-transfer send``: store files in a destination now, verified.

::

    ocs-transfer send examples/data/*.fits* --to ./archive --layout archive

Each file's metadata is read (the data-file class its extension selects), the
file is streamed into the destination where the layout puts it, hashed on the
way and verified there. A results table (or JSON) says where each file went.
A file that cannot be read or stored is reported on one line of stderr and
skipped; the exit status is 0 only when every file was stored.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click

from ..exceptions import ConfigurationError, OcsTransferError
from .base import FileStore, Progress, StoredObject
from .layouts import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, Layout, get_layout

__all__ = ["send_command", "send_files", "SendResult"]


@attrs.frozen(kw_only=True)
class SendResult:
    """What happened to one file."""

    file: str
    stored: StoredObject | None = None
    link: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.stored is not None

    def as_dict(self, destination: str) -> dict[str, Any]:
        if self.stored is None:
            return {"file": self.file, "ok": False, "error": self.error}
        s = self.stored
        return {
            "file": self.file,
            "ok": True,
            "destination": destination,
            "path": s.path,
            "size": s.size,
            "md5": s.md5,
            "sha256": s.sha256,
            "content_type": s.content_type,
            "version_id": s.version_id,
            "provider_checksum": s.provider_checksum,
            "link": self.link,
        }


def _link(store: FileStore, path: str) -> str | None:
    try:
        return store.get_url(path)
    except (NotImplementedError, OcsTransferError):
        return None  # not every destination makes links (a plain directory without a base URL)


def send_files(
    store: FileStore,
    files: Sequence[Path],
    *,
    layout: Layout,
    context: Mapping[str, str],
    progress_for: Any = None,
    on_result: Any = None,
) -> list[SendResult]:
    """Store each of ``files`` in ``store``; one failure never stops the rest.

    ``progress_for(path, size)`` may return a context manager yielding a
    :data:`~ocs_transfer.storage.base.Progress` callback; ``on_result(result)``
    is called after each file.
    """
    from ..input import open_datafile  # type: ignore[attr-defined, unused-ignore]

    results = []
    for path in files:
        try:
            with open_datafile(path) as data_file, _progress(progress_for, path) as progress:
                stored = store.store_file(data_file, layout=layout, context=context, progress=progress)
            result = SendResult(file=str(path), stored=stored, link=_link(store, stored.path))
        except (OcsTransferError, OSError) as exc:
            error = _one_line(exc)
            error = error.removeprefix(f"{path.name}: ")  # the file is named once, in front
            result = SendResult(file=str(path), error=error)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


@contextmanager
def _progress(progress_for: Any, path: Path) -> Iterator[Progress | None]:
    if progress_for is None:
        yield None
        return
    with progress_for(path, path.stat().st_size) as callback:
        yield callback


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, OcsTransferError) else f"{type(exc).__name__}: {text}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@click.command("send")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--to", "destination", required=True, metavar="DEST",
              help="Where to store: a directory (./archive), a URL (memory://x, s3://bucket/prefix,"
                   " webdav+https://host/path) or a provider name.")
@click.option("--layout", default=DEFAULT_LAYOUT, show_default=True, metavar="LAYOUT",
              help=f"{', '.join(BUILTIN_LAYOUTS)}, or a template such as"
                   " '{site}/{instrument}/{day}/{target}/{filename}'.")
@click.option("--target", help="Target name to use instead of the files' own (for the path).")
@click.option("--project", help="Project (proposal) id to use instead of the files' own (for the path).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def send_command(
    files: tuple[Path, ...], destination: str, layout: str, target: str | None, project: str | None, as_json: bool
) -> None:
    """Store FILES in DEST now: read each file's metadata, stream it where the
    layout puts it, verify it, and print where it went."""
    from . import get_store

    try:
        chosen = get_layout(layout)
        store = get_store(destination)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    context = {k: v for k, v in (("target", target), ("project", project)) if v}
    interactive = sys.stderr.isatty() and not as_json

    @contextmanager
    def bar(path: Path, size: int) -> Iterator[Progress]:
        with click.progressbar(length=size, label=path.name, file=sys.stderr, show_pos=False) as b:
            yield b.update

    def report(result: SendResult) -> None:
        if not result.ok:
            click.echo(f"error: {result.file}: {result.error}", err=True)
        elif not interactive and not as_json:
            assert result.stored is not None
            click.echo(f"stored {result.file} -> {result.stored.path} ({_human(result.stored.size)})", err=True)

    with store:
        results = send_files(
            store, files, layout=chosen, context=context, progress_for=bar if interactive else None, on_result=report
        )
    if as_json:
        click.echo(json.dumps([r.as_dict(destination) for r in results], indent=2, ensure_ascii=False))
    else:
        rows: list[tuple[str, ...]] = [("path", "size", "md5", "version", "link")]
        for r in results:
            if r.stored is not None:
                s = r.stored
                rows.append((s.path, _human(s.size), s.md5, s.version_id or "-", r.link or "-"))
        if len(rows) > 1:
            click.echo(f"stored in {destination}:")
            click.echo(_table(rows))
    failed = sum(not r.ok for r in results)
    if failed:
        click.echo(f"{failed} of {len(results)} file(s) failed", err=True)
        sys.exit(1)
