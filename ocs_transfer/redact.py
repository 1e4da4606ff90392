"""Keeping secrets out of reprs, logs, exceptions and output.

:class:`Secret` holds a decrypted credential in memory. It is not a ``str``:
formatting, ``repr``, ``str``, pickling and ``attrs.asdict`` all show a
placeholder, and the value comes out only through :meth:`Secret.reveal`, which
is easy to grep for.

:func:`redact` removes known secret values (and their base64 forms) from text
that came from elsewhere, such as a provider's error message.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, NoReturn

__all__ = ["REDACTED", "Secret", "redact"]

REDACTED = "***"


class Secret:
    """A secret value that never shows itself.

    >>> s = Secret("hunter2")
    >>> s
    Secret('***')
    >>> f"{s}"
    '***'
    >>> s.reveal()
    'hunter2'
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret itself. Pass it straight to the client that needs it."""
        return self._value

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; pass a reference to the stored credential instead")

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __copy__(self) -> Secret:
        return self


def _forms(value: str) -> Iterable[str]:
    yield value
    raw = value.encode()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = enc(raw).decode()
        yield encoded
        yield encoded.rstrip("=")


def redact(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """Return ``text`` with every secret (and its base64 forms) replaced.

    Values shorter than four characters are not replaced: they would only
    shred the message without protecting anything.
    """
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) < 4:
            continue
        for form in sorted(set(_forms(value)), key=len, reverse=True):
            if len(form) >= 4:
                text = text.replace(form, REDACTED)
    return text
