"""classification_table and retry_after_honoured."""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from ocs_transfer import exceptions as E
from ocs_transfer.retry import Decision, Kind, classify, classify_status, parse_retry_after, retrying, translate


class HTTPStatusError(Exception):
    """Shaped like requests/httpx errors: the response carries the status."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = type("Resp", (), {"status_code": status, "headers": headers or {}})()


class ClientError(Exception):
    """Shaped like botocore's ClientError."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}


class ConnectTimeout(Exception):
    """Named like requests' and httpx's connect-timeout classes."""


STATUS_TABLE = [
    (200, Kind.RETRY),
    (400, Kind.NEVER),
    (401, Kind.NEVER),
    (403, Kind.NEVER),
    (404, Kind.NEVER),
    (408, Kind.RETRY),
    (409, Kind.NEVER),
    (413, Kind.NEVER),
    (423, Kind.BACKOFF),
    (429, Kind.BACKOFF),
    (440, Kind.NEVER),
    (441, Kind.NEVER),
    (442, Kind.NEVER),
    (443, Kind.NEVER),
    (500, Kind.RETRY),
    (502, Kind.RETRY),
    (503, Kind.BACKOFF),
    (504, Kind.RETRY),
    (507, Kind.NEVER),
    (599, Kind.RETRY),
]


@pytest.mark.parametrize(("status", "kind"), STATUS_TABLE)
def test_http_status_table(status: int, kind: Kind) -> None:
    assert classify_status(status).kind is kind
    assert classify(HTTPStatusError(status)).kind is kind


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, Kind.BACKOFF),
        ("InternalError", 500, Kind.RETRY),
        ("RequestTimeout", 400, Kind.RETRY),
        ("AccessDenied", 403, Kind.NEVER),
        ("NoSuchBucket", 404, Kind.NEVER),
        ("InvalidAccessKeyId", 403, Kind.NEVER),
        ("ExpiredToken", 400, Kind.RETRY),
        ("userRateLimitExceeded", 403, Kind.BACKOFF),
        ("rateLimitExceeded", 403, Kind.BACKOFF),
        ("storageQuotaExceeded", 403, Kind.NEVER),
        ("too_many_write_operations", 429, Kind.BACKOFF),
        ("invalid_grant", 400, Kind.NEVER),
    ],
)
def test_provider_code_table(code: str, status: int, kind: Kind) -> None:
    assert classify(ClientError(code, status)).kind is kind
    assert classify_status(status, code=code).kind is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionResetError(errno.ECONNRESET, "reset"), Kind.RETRY),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Kind.RETRY),
        (TimeoutError("timed out"), Kind.RETRY),
        (TimeoutError("timed out"), Kind.RETRY),
        (ConnectTimeout("connect timed out"), Kind.RETRY),
        (OSError(errno.EPIPE, "broken pipe"), Kind.RETRY),
        (FileNotFoundError(errno.ENOENT, "missing"), Kind.NEVER),
        (PermissionError(errno.EACCES, "denied"), Kind.NEVER),
        (OSError(errno.ENOSPC, "disk full"), Kind.NEVER),
        (ValueError("bad"), Kind.NEVER),
        (E.RetryError("x"), Kind.RETRY),
        (E.BackoffRetryError("x", retry_after=3), Kind.BACKOFF),
        (E.DoNotRetryError("x"), Kind.NEVER),
        (E.NonFatalDoNotRetryError("x"), Kind.DONE),
        (E.AlreadyStoredError("x"), Kind.DONE),
        (E.IntegrityError("x"), Kind.RETRY),
        (E.QuotaExceededError("x"), Kind.NEVER),
        (E.CredentialError("x"), Kind.NEVER),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_exception_table(exc: BaseException, kind: Kind) -> None:
    assert classify(exc).kind is kind


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert parse_retry_after("-5") == 0.0


def test_429_with_retry_after_header_is_backoff_with_delay() -> None:
    decision = classify(HTTPStatusError(429, {"Retry-After": "30"}))
    assert decision.kind is Kind.BACKOFF and decision.retry_after == 30.0


def test_retry_after_honoured_by_policy_with_fake_clock() -> None:
    """retry_after_honoured: no retry before the delay; backoff class."""
    slept: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise HTTPStatusError(429, {"Retry-After": "17"})
        if len(calls) == 2:
            raise HTTPStatusError(503)
        return "ok"

    assert retrying(attempts=5, base_delay=1, max_delay=60, sleep=slept.append)(flaky) == "ok"
    assert len(calls) == 3
    assert slept[0] == 17.0  # exactly what the server asked for
    assert 0 < slept[1] <= 60


def test_policy_never_retries_a_final_error() -> None:
    calls: list[int] = []

    def denied() -> None:
        calls.append(1)
        raise ClientError("AccessDenied", 403)

    with pytest.raises(ClientError):
        retrying(attempts=5, sleep=lambda s: None)(denied)
    assert len(calls) == 1


def test_policy_is_bounded() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionResetError(errno.ECONNRESET, "reset")

    with pytest.raises(ConnectionResetError):
        retrying(attempts=4, sleep=lambda s: None)(down)
    assert len(calls) == 4


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (FileNotFoundError(errno.ENOENT, "x"), E.ObjectNotFoundError),
        (ClientError("NoSuchKey", 404), E.ObjectNotFoundError),
        (ClientError("AccessDenied", 403), E.PermissionDeniedError),
        (HTTPStatusError(507), E.QuotaExceededError),
        (ClientError("storageQuotaExceeded", 403), E.QuotaExceededError),
        (HTTPStatusError(429, {"Retry-After": "4"}), E.RateLimitError),
        (ConnectionResetError(errno.ECONNRESET, "reset"), E.TransientStorageError),
        (HTTPStatusError(400), E.FinalStorageError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_translate_keeps_classification(exc: Exception, cls: type[Exception]) -> None:
    ours: Any = translate(exc, "doing a thing")
    assert type(ours) is cls
    assert classify(ours).kind is classify(exc).kind or cls is E.ObjectNotFoundError
    assert str(ours).startswith("doing a thing: ")


def test_translate_redacts_secrets() -> None:
    ours = translate(ValueError("bad token AKIAIOSFODNN7EXAMPLE"), "auth", secrets=("AKIAIOSFODNN7EXAMPLE",))
    assert "AKIAIOSFODNN7EXAMPLE" not in str(ours)


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_retry_after_turns_a_plain_retry_into_backoff(status: int) -> None:
    """A status we would retry at once becomes back-off when the server says
    how long to wait, and the wait is what it said."""
    assert classify(HTTPStatusError(status)).kind is Kind.RETRY  # without the header: retry now
    decision = classify(HTTPStatusError(status, {"Retry-After": "7"}))
    assert decision.kind is Kind.BACKOFF and decision.retry_after == 7.0
    assert classify_status(status, retry_after=4.0) == Decision(Kind.BACKOFF, 4.0, status, None)


def test_retry_after_does_not_make_a_final_error_retryable() -> None:
    decision = classify(HTTPStatusError(403, {"Retry-After": "7"}))
    assert decision.kind is Kind.NEVER and decision.retry_after is None


def test_policy_waits_the_retry_after_of_a_500() -> None:
    slept: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise HTTPStatusError(500, {"Retry-After": "11"})
        return "ok"

    assert retrying(attempts=3, base_delay=1, max_delay=60, sleep=slept.append)(flaky) == "ok"
    assert slept == [11.0]


def test_a_negative_retry_after_number_is_no_wait() -> None:
    assert parse_retry_after(-5) == 0.0 and parse_retry_after(-2.5) == 0.0
    assert parse_retry_after(3) == 3.0 and isinstance(parse_retry_after(3), float)


def test_a_numeric_botocore_code_without_a_status_is_read_as_the_status() -> None:
    """botocore reports some errors (a HEAD's 503) with the status as the code
    and no HTTP metadata."""

    class Bare(Exception):
        response = {"Error": {"Code": "503", "Message": "Service Unavailable"}}

    decision = classify(Bare())
    assert decision.kind is Kind.BACKOFF and decision.status == 503


def test_the_default_policy_caps_a_long_retry_after_at_60_seconds() -> None:
    slept: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise HTTPStatusError(429, {"Retry-After": "3600"})
        return "ok"

    assert retrying(sleep=slept.append)(flaky) == "ok"
    assert slept == [60.0]
