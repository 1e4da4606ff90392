"""Path safety: the one place that turns untrusted text into store paths.

Everything that becomes part of a path — header values (target names, site and
instrument ids), names users type, object names a provider lists — passes
through this module before any I/O:

:func:`safe_component`
    One path component made from untrusted text (a header value, a target name
    typed by a user). Separators inside it are replaced, so ``M31/M32`` becomes
    ``M31_M32``; anything that looks like traversal is rejected.
:func:`safe_path`
    A relative object path (``a/b/c.fits``), checked component by component.
:func:`join_under`
    A relative object path joined under a local directory, refusing symlinks
    that lead outside it.

The rules, for every component:

- Unicode is normalised to NFC (so ``e`` + combining acute and ``é`` are the
  same name on every provider).
- NUL, control characters (Unicode category ``Cc``) and unpaired surrogates are
  rejected.
- names made only of dots and white space (``.``, ``..``, ``...``, the empty
  name) are rejected, also when percent-encoded
  (``%2e%2e``, ``%252e%252e``); so are percent-encoded separators, NUL and
  control characters, because some servers decode them.
- Backslashes and Windows drive forms (``C:``, ``\\\\server``) are rejected in
  paths, a drive form in any component (in a single component made from a
  header value, a backslash is a separator and is replaced).
- A component is at most :data:`MAX_COMPONENT_BYTES` bytes of UTF-8, a path at
  most :data:`MAX_PATH_BYTES`.

Anything else is a legal name and round-trips unchanged: spaces, quotes, ``?``,
``#``, ``&``, ``+``, ``%`` that decodes to nothing dangerous, non-ASCII letters.
Violations raise :class:`~ocs_transfer.exceptions.UnsafePathError` (a
``DoNotRetryError`` and a ``ValueError``) naming the input and the rule.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from ..exceptions import UnsafePathError

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "SEPARATOR_REPLACEMENT",
    "join_under",
    "safe_component",
    "safe_path",
]

#: The longest name (in UTF-8 bytes) most file systems accept.
MAX_COMPONENT_BYTES = 255
#: The longest relative path: S3 and GCS keys are limited to 1024 bytes.
MAX_PATH_BYTES = 1024
#: What a separator inside a single component becomes.
SEPARATOR_REPLACEMENT = "_"

_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
#: Percent-decoding stops after this many rounds (``%25252e`` and deeper are
#: rejected outright: no legitimate name is encoded that often).
_MAX_DECODE_ROUNDS = 4


def _show(text: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return repr(shown)


def _check_characters(text: str, what: str) -> None:
    if text.isascii() and text.isprintable():  # the common case: no control character, no surrogate
        return
    for ch in text:
        if ch == "\x00":
            raise UnsafePathError(f"{what} {_show(text)} contains a NUL character")
        if unicodedata.category(ch) == "Cc":
            raise UnsafePathError(f"{what} {_show(text)} contains the control character U+{ord(ch):04X}")
        if unicodedata.category(ch) == "Cs":
            raise UnsafePathError(f"{what} {_show(text)} contains an unpaired surrogate U+{ord(ch):04X}")


def _only_dots(part: str) -> bool:
    """Empty, white space, ``.``, ``..`` and their look-alikes (``...``,
    `` .. ``): Windows drops trailing dots and spaces, so these can all mean
    "here" or "up"."""
    return part.replace(".", "").strip() == ""


def _decoded_forms(text: str) -> list[str]:
    """``text`` and what it becomes after each round of percent-decoding."""
    forms = [text]
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(forms[-1], errors="replace") if "%" in forms[-1] else forms[-1]
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    raise UnsafePathError(f"name {_show(text)} is percent-encoded {_MAX_DECODE_ROUNDS} times or more")


def _hidden_traversal(piece: str) -> str | None:
    """The form of ``piece`` (as is, or percent-decoded) that means "here" or
    "up", or that decodes to a separator, drive or control character; None
    when there is none."""
    for rounds, form in enumerate(_decoded_forms(piece)):
        if "." in form and _only_dots(form):
            return form
        if rounds:
            if _SEPARATORS.search(form) or _DRIVE.match(form):
                return form
            _check_characters(form, "percent-decoded name")
    return None


def _check_component(part: str, original: str) -> None:
    """Reject a single (already separator-free, NFC) component."""
    if _only_dots(part):
        raise UnsafePathError(
            f"path {_show(original)} has the component {part!r}: a name must contain more than dots and white space"
        )
    _check_characters(part, "name")
    if _DRIVE.match(part):
        raise UnsafePathError(f"name {_show(part)} starts with a drive letter (as in C:)")
    hidden = _hidden_traversal(part)
    if hidden is not None:
        raise UnsafePathError(f"name {_show(part)} is traversal or hides a separator (it means {_show(hidden)})")
    size = len(part.encode("utf-8"))
    if size > MAX_COMPONENT_BYTES:
        raise UnsafePathError(
            f"name {_show(part)} is {size} bytes of UTF-8; the limit is {MAX_COMPONENT_BYTES} bytes per component"
        )


def _normalise(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise UnsafePathError(f"{what} must be text, got {type(text).__name__}")
    _check_characters(text, what)  # before NFC: surrogates make normalize() fail
    return unicodedata.normalize("NFC", text)


def safe_component(text: str) -> str:
    """One safe path component from untrusted ``text`` (a header value, a
    target or project name).

    Separators (``/``, ``\\``) inside the text are replaced with
    :data:`SEPARATOR_REPLACEMENT`; text that would be traversal or absolute
    (``..``, ``../x``, ``/etc/x``, ``C:\\x``), empty, too long, or contains
    control characters raises :class:`UnsafePathError`.
    """
    text = _normalise(text, "name")
    if _SEPARATORS.match(text) or _DRIVE.match(text):
        raise UnsafePathError(f"name {_show(text)} is an absolute path or a drive, not a name")
    parts = _SEPARATORS.split(text)
    for part in parts:
        hidden = _hidden_traversal(part)
        if hidden is not None:
            raise UnsafePathError(f"name {_show(text)} contains traversal ({_show(hidden)})")
    component = SEPARATOR_REPLACEMENT.join(parts)
    _check_component(component, text)
    return component


@functools.lru_cache(maxsize=4096)  # a store checks the same path several times per upload
def safe_path(path: str, *, allow_root: bool = False) -> str:
    """A safe relative object path (``/``-separated) from untrusted ``path``.

    Returns the NFC-normalised path. Absolute paths, drive letters,
    backslashes, empty components (``a//b``), ``.`` and ``..`` (also
    percent-encoded), control characters and overlong names raise
    :class:`UnsafePathError`. A single trailing ``/`` is dropped. With
    ``allow_root``, the empty path (the store root, e.g. as a listing prefix)
    is allowed and returned as ``""``.
    """
    path = _normalise(path, "path")
    if path == "":
        if allow_root:
            return ""
        raise UnsafePathError("the path is empty; give a file name")
    if path.startswith("/"):
        raise UnsafePathError(f"path {_show(path)} is absolute; give a path relative to the store root")
    if "\\" in path:
        raise UnsafePathError(f"path {_show(path)} contains a backslash; use '/' between components")
    size = len(path.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise UnsafePathError(f"path {_show(path)} is {size} bytes of UTF-8; the limit is {MAX_PATH_BYTES}")
    if path.endswith("/"):
        path = path[:-1]
    for part in path.split("/"):
        _check_component(part, path)
    return path


def join_under(root: str | os.PathLike[str], path: str, *, allow_root: bool = False) -> Path:
    """``root / path`` for a local directory ``root``, after :func:`safe_path`.

    Also refuses a result that leaves ``root`` through a symbolic link (any
    existing component of the joined path, the last one included, is
    resolved). The checks on the text come first; resolving links reads only
    file metadata. ``allow_root`` is as for :func:`safe_path`.
    """
    relative = safe_path(path, allow_root=allow_root)
    base = Path(root)
    joined = base / relative if relative else base
    real_root = os.path.realpath(base)
    real = os.path.realpath(joined)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafePathError(f"path {_show(path)} leads outside the store root through a symbolic link")
    return joined
