"""Keeping secrets out of reprs, logs, exceptions and output.

:class:`Secret` holds a decrypted credential in memory. It is not a ``str``:
formatting, ``repr``, ``str``, pickling and ``attrs.asdict`` all show a
placeholder, and the value comes out only through :meth:`Secret.reveal`, which
is easy to grep for.

:func:`redact` removes known secret values (and their base64 forms) from text
that came from elsewhere, such as a provider's error message.

:class:`RedactingFilter` is the log filter ocs_transfer installs on the
handlers it sets up (the CLI's, at every ``-v`` level): it removes what HTTP
libraries print at DEBUG that carries credentials, whatever its value: session
tokens (``x-amz-security-token``), signatures and credential scopes of signed
URLs and ``Authorization`` headers, Bearer/Basic values, OAuth tokens,
passwords (also the password in a URL, ``amqp://user:PASSWORD@host``), and
the ``sig`` of our own signed links. Services that configure
logging themselves add it with :func:`install_log_redaction`.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from typing import Any, NoReturn

__all__ = ["REDACTED", "RedactingFilter", "Secret", "install_log_redaction", "redact", "redact_credentials"]

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


#: ``name: value`` / ``name=value`` / ``'name': b'value'`` pairs whose value is a credential.
_CREDENTIAL_PAIR = re.compile(
    r"(?i)(?P<key>x-amz-security-token|x-amz-credential|x-amz-signature|x-goog-credential|x-goog-signature"
    r"|googleaccessid|security-token|session[_-]?token|aws_secret_access_key|aws_access_key_id|secret[_-]?key"
    r"|credential|signature|authorization|access[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret"
    r"|password|passwd|api[_-]?key|private[_-]?key|token|secret|sig)"
    r"(?P<sep>['\"]?\s*[:=]\s*(?:b?['\"])?)"
    r"(?P<value>[^'\"\s&,;)}\]]+)"
)
#: ``Bearer xyz``, ``Basic xyz`` (Authorization header values however they are printed).
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token|bearer)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
#: The password of a URL's user info (``amqp://user:PASSWORD@host``, ``postgresql://...``).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<value>[^@\s/]+)(?=@)")
#: AWS key ids (in a SigV4 credential scope or anywhere else).
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b")


def redact_credentials(text: str) -> str:
    """``text`` with every credential-looking value replaced (see the module
    doc), whether or not we know the value."""
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _CREDENTIAL_PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}", text)
    return _AWS_KEY_ID.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback) with
    :func:`redact_credentials` before any handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template, never its arguments
            message = str(record.msg)
        record.msg = redact_credentials(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_credentials(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the
    root logger by default) that has none yet. Filters on handlers see the
    records of every library logger that propagates to them."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
