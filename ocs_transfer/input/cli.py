"""``ocs-transfer inspect FILE...``: what ocs_transfer reads from data files."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..exceptions import OcsTransferError

__all__ = ["inspect_command", "inspect_path"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def inspect_path(path: str, metadata: dict[str, Any], *, with_headers: bool = False, with_hashes: bool = False,
                 settings: Any = None) -> dict[str, Any]:
    """Everything ``inspect`` shows about one file, as a JSON-ready dict."""
    from .filefactory import open_datafile

    with open_datafile(path, metadata, settings=settings) as df:
        f = df.open_file
        cls = type(df)
        info: dict[str, Any] = {
            "path": path,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "file": {"basename": f.basename, "extension": f.extension, "size": f.size},
        }
        for label, parsed in (("lco_name", f.lco_name), ("photon_ranch_name", f.photon_ranch_name)):
            if parsed is not None:
                import attrs

                info[label] = attrs.asdict(parsed)
        if with_hashes:
            info["file"].update(f.hashes())
        info["content_type"] = df.get_filestore_content_type()
        info["filestore_path"] = df.get_filestore_path()
        info["archive_record"] = df.get_header_data().get_archive_frame_data()
        info["footprint"] = df.get_wcs_corners()
        if with_headers:
            info["headers"] = df.get_header_data().get_headers()
    return _jsonable(info)  # type: ignore[no-any-return]


def _show(info: dict[str, Any], out: list[str]) -> None:
    f = info["file"]
    top: list[tuple[str, str]] = [
        ("class", info["class"]),
        ("size", f"{f['size']:,} bytes"),
        ("basename", f["basename"]),
        ("extension", f["extension"] or "(none)"),
    ]
    top += [(algo, f[algo]) for algo in ("md5", "sha256") if algo in f]
    for label, title in (("lco_name", "LCO name"), ("photon_ranch_name", "Photon Ranch name")):
        if label in info:
            top.append((title, " ".join(f"{k}={v}" for k, v in info[label].items() if v is not None)))
    top.append(("content type", info["content_type"] or "(none)"))
    top.append(("file-store path", info["filestore_path"]))
    footprint = info["footprint"]
    if footprint:
        ring = footprint["coordinates"][0]
        top.append(("footprint", ", ".join(f"({x:.5f}, {y:.5f})" for x, y in ring[:4])))
    sections = [("", top), ("archive record", [(k, _cell(v)) for k, v in info["archive_record"].items()])]
    if "headers" in info:
        sections.append(("headers", [(k, _cell(v)) for k, v in info["headers"].items()]))
    width = max(len(k) + (2 if title else 0) for title, rows in sections for k, _ in rows)
    out.append(info["path"])
    for title, rows in sections:
        indent = "    " if title else "  "
        if title:
            out.append(f"  {title}:")
        out.extend(f"{indent}{key.ljust(width - len(indent) + 2)}  {value}" for key, value in rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    return " | ".join(str(value).splitlines())


def _parse_metadata(pairs: tuple[str, ...]) -> dict[str, Any]:
    from .fitsheader import parse_card_value

    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        parsed = parse_card_value(value)
        metadata[key] = parsed if not isinstance(parsed, str) else value
    return metadata


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list, one object per file) instead of tables.")
@click.option("-m", "--metadata", "metadata", multiple=True, metavar="KEY=VALUE",
              help="Metadata to merge over the file's headers (repeatable), e.g. -m DATE-OBS=2015-02-19T13:56:05.")
@click.option("--headers", "with_headers", is_flag=True, help="Also show every header.")
@click.option("--hash", "with_hashes", is_flag=True, help="Also compute MD5 and SHA-256 (reads the whole file).")
def inspect_command(files: tuple[str, ...], as_json: bool, metadata: tuple[str, ...], with_headers: bool,
                    with_hashes: bool) -> None:
    """Show what ocs_transfer reads from data files: class, name parts, archive
    record, content type and file-store path. Only headers are read.

    A file that cannot be read gets a one-line reason on stderr; the others are
    still inspected and the exit status is 1.
    """
    from ..settings import Settings

    settings = Settings.from_env()
    extra = _parse_metadata(metadata)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in files:
        try:
            info = inspect_path(path, extra, with_headers=with_headers, with_hashes=with_hashes, settings=settings)
        except (OcsTransferError, OSError) as exc:
            failed += 1
            reason = " ".join((str(exc) if isinstance(exc, OcsTransferError) else str(exc.strerror or exc)).split())
            for prefix in (f"{path}: ", f"{os.path.basename(path)}: "):
                reason = reason.removeprefix(prefix)
            reason = f"{path}: {reason}"
            if "missing required headers" in reason:
                reason += "; on the command line: -m KEY=VALUE"
            click.echo(f"error: {reason}", err=True)
            if as_json:
                results.append({"path": path, "error": reason})
            continue
        results.append(info)
        if not as_json:
            lines: list[str] = []
            _show(info, lines)
            click.echo("\n".join(lines) + "\n")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        sys.exit(1)
