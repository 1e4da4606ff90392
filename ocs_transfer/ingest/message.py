"""The ingest queue's message: what the telescope side publishes.

The data-flow document's message is ``{"filepath": "/path/to/file"}``; two
optional keys extend it::

    {"filepath": "/data/coj1m011-kb05-20150219-0125-e91.fits.fz",
     "metadata": {"OBJECT": "M31"},          # merged over the file's headers
     "destinations": ["alice-dropbox"]}      # scheduled through the ledger

Anything else is refused with the reason (a misspelt ``"destination"`` must not
silently schedule nothing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from ..exceptions import DoNotRetryError

__all__ = ["IngestMessage", "MessageError"]

_KEYS = ("filepath", "metadata", "destinations")
#: Bytes a message may have: a path and some header values, not a file.
MAX_MESSAGE_SIZE = 64 * 1024
_SCALARS = (str, int, float, bool, type(None))


class MessageError(DoNotRetryError, ValueError):
    """A queue message is not a valid ingest message; the publisher must
    send another."""


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MessageError(f'"metadata" must be an object of header values, got {type(value).__name__}')
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise MessageError(f'"metadata" keys must be header names, got {key!r}')
        if not isinstance(item, _SCALARS):
            raise MessageError(f'"metadata" value of {key!r} must be a string, number, boolean or null')
    return dict(value)


def _destinations(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
        raise MessageError('"destinations" must be a list of destination names (see `ocs-transfer dest list`)')
    return tuple(value)


@attrs.frozen
class IngestMessage:
    """One file to ingest."""

    filepath: str
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_metadata)
    destinations: tuple[str, ...] = attrs.field(default=(), converter=_destinations)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.filepath, str) or not self.filepath.strip():
            raise MessageError('"filepath" must be the path of the file to ingest, a non-empty string')
        if not os.path.isabs(self.filepath):
            raise MessageError(
                f'"filepath" must be an absolute path (the consumer runs elsewhere), got {self.filepath!r}'
            )
        if "\0" in self.filepath:
            raise MessageError('"filepath" contains a NUL character')

    @classmethod
    def parse(cls, body: bytes | str) -> IngestMessage:
        """The message in ``body`` (JSON), or :class:`MessageError` saying what is wrong."""
        if len(body) > MAX_MESSAGE_SIZE:
            raise MessageError(
                f"the message has {len(body)} bytes, more than {MAX_MESSAGE_SIZE}: send the path, not the file"
            )
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MessageError(f'the message is not JSON ({exc}); expected {{"filepath": "/path/to/file"}}') from None
        if not isinstance(data, dict):
            raise MessageError(
                f'the message must be a JSON object like {{"filepath": "/path"}}, got {type(data).__name__}'
            )
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise MessageError(f"unknown key(s) {', '.join(map(repr, unknown))}; a message has {', '.join(_KEYS)}")
        if "filepath" not in data:
            raise MessageError('the message has no "filepath"')
        return cls(
            data["filepath"],
            data.get("metadata", {}),
            data.get("destinations", []),
        )

    def to_json(self) -> bytes:
        """The message as published (only the keys that are set)."""
        data: dict[str, Any] = {"filepath": self.filepath}
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.destinations:
            data["destinations"] = list(self.destinations)
        return json.dumps(data, sort_keys=True).encode()
