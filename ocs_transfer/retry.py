"""The one place that decides what is retried.

:func:`classify` maps any exception to a :class:`Decision`: retry now, back off,
never retry, or already done. Provider code translates foreign errors with
:func:`translate` at its boundary; everything else (the engine, the CLI,
tenacity policies) asks :func:`classify`.

Foreign exceptions are recognised by shape, without importing their libraries:
an HTTP status found on ``exc.status``, ``exc.status_code``, ``exc.code`` or
``exc.response`` (requests, httpx, aiohttp, google-auth, webdav4), botocore's
``exc.response["Error"]["Code"]``, and the OSError family.

A client library whose errors carry no such shape (ftplib's ``error_perm``,
an SDK's ``AuthError``) gets a classifier from its provider::

    register_classifier("ftplib.error_perm", lambda e: Decision(Kind.NEVER))
    register_classifier(dropbox.exceptions.AuthError, classify_auth_error)

A classifier is asked for any exception whose class (or a base class) it was
registered for, by class or by ``"module.QualName"`` (so registering needs no
import of the library); it returns a :class:`Decision`, or ``None`` to let the
generic rules decide. The most specific registration wins.
"""

from __future__ import annotations

import enum
import errno
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from . import exceptions as exc_mod
from .exceptions import (
    OcsTransferError,
)

if TYPE_CHECKING:
    import tenacity  # imported where a policy is made: classifying errors needs none of it

__all__ = [
    "Decision",
    "Kind",
    "call_with_retries",
    "classify",
    "classify_status",
    "parse_retry_after",
    "register_classifier",
    "retrying",
    "translate",
]

T = TypeVar("T")


class Kind(enum.Enum):
    """What to do about an error."""

    RETRY = "retry"  #: transient; retry soon
    BACKOFF = "backoff"  #: retry after waiting
    NEVER = "never"  #: fail for good
    DONE = "done"  #: nothing to retry; not a failure (e.g. already stored)

    @property
    def retryable(self) -> bool:
        return self in (Kind.RETRY, Kind.BACKOFF)


@attrs.frozen
class Decision:
    kind: Kind
    retry_after: float | None = None  #: seconds, when the other side said
    status: int | None = None  #: the HTTP status, when there was one
    code: str | None = None  #: the provider's error code, when there was one

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


# HTTP statuses and what they mean for a retry.
_STATUS: dict[int, Kind] = {
    408: Kind.RETRY,  # request timeout
    409: Kind.NEVER,  # conflict (caller decides; by default not blindly retried)
    423: Kind.BACKOFF,  # locked (WebDAV)
    425: Kind.RETRY,
    429: Kind.BACKOFF,
    500: Kind.RETRY,
    502: Kind.RETRY,
    503: Kind.BACKOFF,
    504: Kind.RETRY,
    507: Kind.NEVER,  # insufficient storage
    # Seafile's own codes
    440: Kind.NEVER,  # bad file name
    441: Kind.NEVER,  # file exists
    442: Kind.NEVER,  # too large
    443: Kind.NEVER,  # out of quota
}

# Provider error codes (S3, GCS, Drive, Dropbox, OAuth), case-insensitive.
_CODES: dict[str, Kind] = {
    # retry
    "requesttimeout": Kind.RETRY,
    "requesttimeouterror": Kind.RETRY,
    "internalerror": Kind.RETRY,
    "serviceunavailable": Kind.BACKOFF,
    "slowdown": Kind.BACKOFF,
    "throttling": Kind.BACKOFF,
    "throttlingexception": Kind.BACKOFF,
    "requestlimitexceeded": Kind.BACKOFF,
    "toomanyrequests": Kind.BACKOFF,
    "too_many_requests": Kind.BACKOFF,
    "too_many_write_operations": Kind.BACKOFF,
    "ratelimitexceeded": Kind.BACKOFF,
    "userratelimitexceeded": Kind.BACKOFF,
    "backenderror": Kind.RETRY,
    "expiredtoken": Kind.RETRY,  # refresh and retry
    "expired_access_token": Kind.RETRY,
    "internal_error": Kind.RETRY,
    # never
    "accessdenied": Kind.NEVER,
    "allaccessdisabled": Kind.NEVER,
    "invalidaccesskeyid": Kind.NEVER,
    "signaturedoesnotmatch": Kind.NEVER,
    "nosuchbucket": Kind.NEVER,
    "nosuchkey": Kind.NEVER,
    "nosuchversion": Kind.NEVER,
    "invalidbucketname": Kind.NEVER,
    "entitytoolarge": Kind.NEVER,
    "storagequotaexceeded": Kind.NEVER,
    "quotaexceeded": Kind.NEVER,
    "insufficient_space": Kind.NEVER,
    "invalid_grant": Kind.NEVER,
    "invalid_client": Kind.NEVER,
    "unauthorized_client": Kind.NEVER,
    "invalid_access_token": Kind.NEVER,
    "insufficient_scope": Kind.NEVER,
    "forbidden": Kind.NEVER,
    "notfound": Kind.NEVER,
    "path/not_found": Kind.NEVER,
    "path/insufficient_space": Kind.NEVER,
    "path/disallowed_name": Kind.NEVER,
    "path/malformed_path": Kind.NEVER,
}

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
    }
)

# Foreign exception class names that mean "the network hiccuped".
_TRANSIENT_NAMES = frozenset(
    {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "TimeoutException",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ProtocolError",
        "ChunkedEncodingError",
        "RemoteDisconnected",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "ClientOSError",
        "ClientPayloadError",
        "ServerTimeoutError",
        "TransportError",
        "NetworkError",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "PoolTimeout",
        "IncompleteRead",
    }
)


def parse_retry_after(value: str | float | int | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an
    HTTP date). ``None`` when absent or unreadable; never negative."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_status(status: int, *, code: str | None = None, retry_after: float | None = None) -> Decision:
    """Classify an HTTP status (plus an optional provider error code)."""
    if code:
        by_code = _CODES.get(code.lower())
        if by_code is not None:
            return Decision(by_code, retry_after if by_code is Kind.BACKOFF else None, status, code)
    if status in _STATUS:
        kind = _STATUS[status]
    elif 500 <= status < 600:
        kind = Kind.RETRY
    elif 400 <= status < 500:
        kind = Kind.NEVER
    else:
        kind = Kind.RETRY
    if retry_after is not None and kind is Kind.RETRY:
        kind = Kind.BACKOFF
    return Decision(kind, retry_after if kind is Kind.BACKOFF else None, status, code)


#: Provider classifiers by exception class name ("module.QualName"); see register_classifier.
_CLASSIFIERS: dict[str, Callable[[BaseException], Decision | None]] = {}


def _class_name(klass: type) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


def register_classifier(
    exc_class: type[BaseException] | str, classifier: Callable[[BaseException], Decision | None]
) -> None:
    """Teach :func:`classify` a client library's errors: ``classifier`` is
    called for instances of ``exc_class`` (a class, or its ``"module.QualName"``
    as ``type(e).__module__`` and ``__qualname__`` spell it) and its
    subclasses, and returns a :class:`Decision` or ``None`` (no opinion).
    Registering the same class again replaces the classifier; call it from
    the provider module (or its ``from_config``), it is cheap."""
    name = exc_class if isinstance(exc_class, str) else _class_name(exc_class)
    _CLASSIFIERS[name] = classifier


def _registered(exc: BaseException) -> Decision | None:
    if not _CLASSIFIERS:
        return None
    for klass in type(exc).__mro__:
        classifier = _CLASSIFIERS.get(_class_name(klass))
        if classifier is None:
            continue
        try:
            decision = classifier(exc)
        except Exception:  # a broken classifier must not break error handling
            return None
        if decision is not None:
            return decision
    return None


def _headers_of(obj: Any) -> Mapping[str, Any] | None:
    headers = getattr(obj, "headers", None)
    if headers is None:
        return None
    try:
        return {str(k).lower(): v for k, v in dict(headers).items()}
    except (TypeError, ValueError):
        return None


def _status_of(exc: BaseException) -> tuple[int | None, str | None, float | None]:
    """Find (status, provider code, retry-after) on a foreign exception."""
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None

    # botocore ClientError: exc.response = {"Error": {"Code"}, "ResponseMetadata": {...}}
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error") or {}
        code = err.get("Code") or None
        meta = response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode")
        meta_headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        retry_after = parse_retry_after(meta_headers.get("retry-after"))
        if code and code.isdigit() and status is None:
            status = int(code)
        return status, code, retry_after

    # requests / httpx: exc.response.status_code; aiohttp: exc.status
    if response is not None:
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        headers = _headers_of(response)
        if headers:
            retry_after = parse_retry_after(headers.get("retry-after"))
    for attr in ("status", "status_code", "code", "http_status"):
        value = getattr(exc, attr, None)
        if status is None and isinstance(value, int) and 100 <= value < 600:
            status = value
    headers = _headers_of(exc)
    if retry_after is None and headers:
        retry_after = parse_retry_after(headers.get("retry-after"))
    for attr in ("reason", "error_code", "error"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.lower() in _CODES:
            code = value
            break
    if retry_after is None:
        value = getattr(exc, "retry_after", None)
        if isinstance(value, (int, float, str)):
            retry_after = parse_retry_after(value)
    return status, code, retry_after


def classify(exc: BaseException) -> Decision:
    """Decide what to do about ``exc``. Never raises."""
    return _classify(exc, set())


def _classify(exc: BaseException, seen: set[int]) -> Decision:
    seen.add(id(exc))
    # Ours first: the type says it (``retry_intent``, see exceptions.py).
    if isinstance(exc, OcsTransferError):
        intent = exc.retry_intent
        if intent == "done":
            return Decision(Kind.DONE)
        if intent == "never":
            return Decision(Kind.NEVER)
        if intent == "backoff":
            return Decision(Kind.BACKOFF, getattr(exc, "retry_after", None))
        if intent == "retry":
            return Decision(Kind.RETRY)
        cause = exc.__cause__
        if cause is not None and id(cause) not in seen:
            return _classify(cause, seen)
        return Decision(Kind.NEVER)

    registered = _registered(exc)
    if registered is not None:
        return registered

    status, code, retry_after = _status_of(exc)
    if status is not None or (code and code.lower() in _CODES):
        return classify_status(status or 0, code=code, retry_after=retry_after)

    if isinstance(exc, TimeoutError):  # socket.timeout too: an alias since Python 3.10
        return Decision(Kind.RETRY)
    if isinstance(exc, (ConnectionError, EOFError)):
        return Decision(Kind.RETRY)
    if isinstance(exc, OSError):
        if exc.errno in _TRANSIENT_ERRNOS:
            return Decision(Kind.RETRY)
        if type(exc).__name__ in _TRANSIENT_NAMES:
            return Decision(Kind.RETRY)
        # Local disk full, permission, missing file, read-only fs: a person must act.
        return Decision(Kind.NEVER)
    for klass in type(exc).__mro__:
        if klass.__name__ in _TRANSIENT_NAMES:
            return Decision(Kind.RETRY)
    if isinstance(exc, (ValueError, TypeError, KeyError, LookupError, NotImplementedError)):
        return Decision(Kind.NEVER)
    # Unknown errors: retry, bounded by the policy. An unknown failure in the
    # middle of a network transfer is more often transient than not, and the
    # attempt limit keeps this from looping.
    cause = exc.__cause__ or exc.__context__
    if cause is not None and id(cause) not in seen:
        return _classify(cause, seen)
    return Decision(Kind.RETRY)


_KIND_TO_CLASS: dict[Kind, type[OcsTransferError]] = {
    Kind.RETRY: exc_mod.TransientStorageError,
    Kind.BACKOFF: exc_mod.RateLimitError,
    Kind.NEVER: exc_mod.FinalStorageError,
    Kind.DONE: exc_mod.AlreadyStoredError,
}


def translate(exc: BaseException, message: str, *, secrets: tuple[Any, ...] = ()) -> OcsTransferError:
    """Turn a foreign exception into one of ours, keeping its classification.

    Use at a provider boundary: ``raise translate(e, "upload of x failed") from e``.
    ``message`` says what was being done; the foreign error's text is appended
    after ``secrets`` are redacted from it.
    """
    from .redact import redact

    if isinstance(exc, OcsTransferError):
        return exc
    decision = classify(exc)
    detail = redact(f"{type(exc).__name__}: {exc}", secrets)
    text = f"{message}: {detail}"
    if (
        isinstance(exc, FileNotFoundError)
        or decision.code in ("NoSuchKey", "NoSuchBucket", "NoSuchVersion")
        or (decision.status == 404)
    ):
        return exc_mod.ObjectNotFoundError(text)
    if decision.status in (507, 443) or (decision.code or "").lower() in (
        "storagequotaexceeded",
        "quotaexceeded",
        "insufficient_space",
        "path/insufficient_space",
    ):
        return exc_mod.QuotaExceededError(text)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc_mod.QuotaExceededError(text)
    if isinstance(exc, PermissionError) or (decision.status in (401, 403) and decision.kind is Kind.NEVER):
        return exc_mod.PermissionDeniedError(text)
    klass = _KIND_TO_CLASS[decision.kind]
    if klass is exc_mod.RateLimitError:
        return exc_mod.RateLimitError(text, retry_after=decision.retry_after)
    return klass(text)


# -- tenacity policies ----------------------------------------------------------


def _wait(base: float, cap: float) -> Callable[[tenacity.RetryCallState], float]:
    import tenacity

    exponential = tenacity.wait_exponential(multiplier=base, max=cap) + tenacity.wait_random(0, base)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if exc is not None:
                decision = classify(exc)
                if decision.retry_after is not None:
                    return min(decision.retry_after, cap)
        return float(exponential(state))

    return wait


def retrying(
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 60.0,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """A tenacity policy that retries exactly what :func:`classify` says is
    retryable, at most ``attempts`` times, waiting ``Retry-After`` when given
    and exponential backoff with jitter otherwise. ``deadline`` bounds the
    total time in seconds. The last exception is re-raised unchanged."""
    import tenacity

    stop: Any = tenacity.stop_after_attempt(attempts)
    if deadline is not None:
        stop = stop | tenacity.stop_after_delay(deadline)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: classify(e).retryable),
        stop=stop,
        wait=_wait(base_delay, max_delay),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )


def call_with_retries(fn: Callable[[], T], **policy: Any) -> T:
    """Call ``fn`` under :func:`retrying` (keyword arguments as there)."""
    return retrying(**policy)(fn)
