"""Layouts: where a data file goes under a store's root.

A layout turns a data file (its header data and file name) plus a context
(``target``, ``project`` and any other values the caller supplies) into a
relative path. Every layout is a template of named fields separated by ``/``;
the built-in ones are::

    flat                   {filename}
    by_target              {target}/{filename}                (the default)
    by_project_and_target  {project}/{target}/{filename}
    archive                {site}/{instrument}/{day}/{kind}/{filename}

``archive`` is ocs_archive's file-store path, which the data file builds itself
(``DataFile.get_filestore_path()``: ``kind`` is ``raw`` for reduction level 0,
``processed`` otherwise, ``thumbnails`` for thumbnails; subclasses may differ,
e.g. LCO bad-pixel masks go to ``site/instrument/bpm/``).

A user template is any string with ``{field}`` placeholders, e.g.
``"{site}/{instrument}/{day}/{target}/{filename}"``; :data:`FIELDS` lists the
fields. Values from the context win over the header data. Every field value
passes through :func:`~ocs_transfer.storage.paths.safe_component` (so a target
named ``M31/M32`` stays one directory, ``M31_M32``), and the whole path through
:func:`~ocs_transfer.storage.paths.safe_path`.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ..exceptions import ConfigurationError, FileSpecificationError, UnsafePathError
from .paths import safe_component, safe_path

log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_PATH",
    "ArchiveLayout",
    "BUILTIN_LAYOUTS",
    "DEFAULT_LAYOUT",
    "FIELDS",
    "Layout",
    "context_from",
    "get_layout",
]


def _header(getter: str) -> Callable[[Any], object]:
    def get(data_file: Any) -> object:
        return getattr(data_file.get_header_data(), getter)()

    return get


def _kind(data_file: Any) -> str:
    if _is_thumbnail(data_file):
        return "thumbnails"
    level = data_file.get_header_data().get_reduction_level()
    if level is None or level == "":
        return ""  # reported as missing
    try:
        return "raw" if int(level) == 0 else "processed"
    except (TypeError, ValueError) as exc:
        raise FileSpecificationError(f"reduction level {level!r} is not a whole number") from exc


def _is_thumbnail(data_file: Any) -> bool:
    from ..input.thumbnailfile import ThumbnailFile

    return isinstance(data_file, ThumbnailFile)


def _day_part(start: int, end: int) -> Callable[[Any], object]:
    def get(data_file: Any) -> object:
        day = data_file.get_header_data().get_observation_day()
        return str(day)[start:end] if day else None

    return get


#: Field name -> (what it is, how to get it from a data file). Context values
#: with the same name take precedence.
FIELDS: dict[str, tuple[str, Callable[[Any], object]]] = {
    "filename": ("file name with extension", lambda f: f.open_file.basename + f.open_file.extension),
    "basename": ("file name without extension", lambda f: f.open_file.basename),
    "extension": ("extension, e.g. .fits.fz", lambda f: f.open_file.extension),
    "site": ("site id", _header("get_site_id")),
    "instrument": ("instrument id", _header("get_instrument_id")),
    "day": ("observation day, YYYYMMDD", _header("get_observation_day")),
    "year": ("year of the observation day", _day_part(0, 4)),
    "month": ("month of the observation day, MM", _day_part(4, 6)),
    "target": ("target name", _header("get_target_name")),
    "project": ("project (proposal) id", _header("get_proposal_id")),
    "reduction_level": ("reduction level, 0 for raw data", _header("get_reduction_level")),
    "kind": ("raw, processed or thumbnails", _kind),
}

def _parse(template: str) -> tuple[tuple[str, str | None], ...]:
    """``(literal, field)`` pairs; rejects everything but plain ``{name}``."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(f"layout template {template!r} is malformed: {exc}") from exc
    out: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (not field.isidentifier() or spec or conversion):
            raise ConfigurationError(
                f"layout template {template!r}: {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not allowed; write plain fields such as {{target}}"
            )
        out.append((literal, field))
    return tuple(out)


@attrs.frozen
class Layout:
    """A path template. Build one with :func:`get_layout`."""

    name: str
    template: str
    #: Field names the caller promises to supply in the context.
    context_fields: frozenset[str] = frozenset()
    _parts: tuple[tuple[str, str | None], ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        parts = _parse(self.template)
        available = set(FIELDS) | self.context_fields
        unknown = sorted({f for _, f in parts if f is not None and f not in available})
        if unknown:
            raise ConfigurationError(
                f"layout template {self.template!r} uses unknown field(s) {', '.join(unknown)};"
                f" available: {', '.join(_available_names(self.context_fields))}"
            )
        if not any(f for _, f in parts):
            raise ConfigurationError(f"layout template {self.template!r} has no {{field}}; add at least {{filename}}")
        # The literal parts must form a safe relative path on their own.
        try:
            safe_path("".join(lit + ("x" if f else "") for lit, f in parts))
        except UnsafePathError as exc:
            raise ConfigurationError(f"layout template {self.template!r} is not a safe relative path: {exc}") from exc
        object.__setattr__(self, "_parts", parts)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields this layout uses, in order."""
        return tuple(f for _, f in self._parts if f is not None)

    def path_for(self, data_file: Any, context: Mapping[str, object] | None = None) -> str:
        """The relative path of ``data_file`` under a store root.

        Raises :class:`~ocs_transfer.exceptions.FileSpecificationError` when a
        value the layout needs is missing (say which, and how to supply it),
        and :class:`~ocs_transfer.exceptions.UnsafePathError` when a value is
        not a legal name.
        """
        context = context or {}
        out = []
        for literal, field in self._parts:
            out.append(literal)
            if field is not None:
                out.append(self._value(field, data_file, context))
        return safe_path("".join(out))

    def _value(self, field: str, data_file: Any, context: Mapping[str, object]) -> str:
        value = context.get(field)
        if value is None or value == "":
            if field not in FIELDS:
                raise ConfigurationError(
                    f"layout {self.name!r} needs {{{field}}} from the context, but none was given"
                )
            value = FIELDS[field][1](data_file)
        if value is None or str(value).strip() == "":
            hint = f" (pass --{field})" if field in ("target", "project") else ""
            raise FileSpecificationError(
                f"layout {self.name!r} needs the {FIELDS[field][0]} ({{{field}}}), but the file has none;"
                f" supply it in the context{hint} or choose another layout"
            )
        try:
            return safe_component(str(value))
        except UnsafePathError as exc:
            raise UnsafePathError(f"layout {self.name!r}, field {{{field}}}: {exc}") from exc


@attrs.frozen
class ArchiveLayout(Layout):
    """ocs_archive's file-store path, as the data file itself builds it
    (:meth:`DataFile.get_filestore_path`), so observatory subclasses and
    special cases (thumbnails, LCO bad-pixel masks) keep their own paths. Its
    template documents the usual shape."""

    def path_for(self, data_file: Any, context: Mapping[str, object] | None = None) -> str:
        if data_file is None and context and context.get(ARCHIVE_PATH):
            return safe_path(str(context[ARCHIVE_PATH]))  # read from the file when it was scheduled
        if data_file is None:
            raise ConfigurationError(f"layout {self.name!r} needs the file's metadata ({{{ARCHIVE_PATH}}})")
        return safe_path(str(data_file.get_filestore_path()))


#: The context key that carries a file's own file-store path (the ``archive``
#: layout) from scheduling, when the file was read, to the transfer.
ARCHIVE_PATH = "archive_path"


def context_from(data_file: Any) -> dict[str, str]:
    """Every layout field the data file can give (see :data:`FIELDS`), and its
    file-store path, for layouts applied later without the file (scheduled
    transfers). Fields the file lacks are left out."""
    values: dict[str, str] = {}
    for field, (_, get) in FIELDS.items():
        try:
            value = get(data_file)
        except Exception as exc:  # a field this file cannot give: a layout that needs it says so
            log.debug("layout field %s: %s", field, type(exc).__name__)
            continue
        if value is not None and str(value).strip():
            values[field] = str(value)
    try:
        values[ARCHIVE_PATH] = str(data_file.get_filestore_path())
    except Exception as exc:
        log.debug("no file-store path: %s", type(exc).__name__)
    return values


def _available_names(context_fields: Iterable[str] = ()) -> list[str]:
    return sorted(set(FIELDS) | set(context_fields))


#: The built-in layouts by name.
BUILTIN_LAYOUTS: dict[str, Layout] = {
    "flat": Layout("flat", "{filename}"),
    "by_target": Layout("by_target", "{target}/{filename}"),
    "by_project_and_target": Layout("by_project_and_target", "{project}/{target}/{filename}"),
    "archive": ArchiveLayout("archive", "{site}/{instrument}/{day}/{kind}/{filename}"),
}

DEFAULT_LAYOUT = "by_target"


def get_layout(name_or_template: str | Layout | None = None, *, context_fields: Iterable[str] = ()) -> Layout:
    """A layout by built-in name, or from a template containing ``{field}``s.

    ``None`` gives the default (``by_target``). ``context_fields`` names extra
    fields (beyond :data:`FIELDS`) the caller will supply in the context.
    """
    if isinstance(name_or_template, Layout):
        return name_or_template
    if name_or_template is None:
        name_or_template = DEFAULT_LAYOUT
    key = name_or_template.strip()
    if key.lower().replace("-", "_") in BUILTIN_LAYOUTS:
        return BUILTIN_LAYOUTS[key.lower().replace("-", "_")]
    if "{" in key:
        return Layout("custom", key, frozenset(context_fields))
    raise ConfigurationError(
        f"unknown layout {name_or_template!r}; use one of {', '.join(BUILTIN_LAYOUTS)}"
        f" or a template such as '{{site}}/{{instrument}}/{{day}}/{{target}}/{{filename}}'"
        f" (fields: {', '.join(_available_names(context_fields))})"
    )
