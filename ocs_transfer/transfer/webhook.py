"""The webhook notifier: tells a user's service (or a mailer, a chat bot)
that a transfer finished, with its link, size, checksums and expiry.

It is a plugin of the ``ocs_transfer_transfer_finished`` hook. The worker
registers one when ``OCS_TRANSFER_WEBHOOK_URL`` is set; a program registers
its own::

    from ocs_transfer import plugins
    from ocs_transfer.transfer.webhook import WebhookNotifier

    plugins.get_plugin_manager().register(WebhookNotifier("https://results.example.org/hooks/transfer", secret))

Each finished transfer is one ``POST`` of a JSON object (see
:func:`payload`), signed: ``X-OCS-Transfer-Signature: sha256=<hex>`` is the
HMAC-SHA256, under the shared secret, of ``<timestamp>.<body>``, where
``X-OCS-Transfer-Timestamp`` is the UNIX time of sending (a receiver refuses
old timestamps, so a captured request cannot be replayed later). A 5xx, a
429 or a network failure is retried with backoff (``attempts`` in all, each
request bounded by ``timeout`` seconds); other answers are final. A
notification that could not be delivered is logged and never undoes the
transfer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from ..exceptions import ConfigurationError, DoNotRetryError, RetryError
from ..hookspecs import hookimpl
from ..redact import Secret
from ..settings import Settings

__all__ = [
    "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookError", "WebhookNotifier", "payload", "register_from_settings",
    "sign",
]  # fmt: skip

#: The name the settings' notifier is registered under (one per process).
PLUGIN_NAME = "ocs_transfer.webhook"

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-OCS-Transfer-Signature"
TIMESTAMP_HEADER = "X-OCS-Transfer-Timestamp"


class WebhookError(RetryError):
    """The receiver did not take the notification now (5xx, 429, no answer)."""


class WebhookRefusedError(DoNotRetryError):
    """The receiver refused the notification (a 4xx other than 429)."""


def sign(secret: Secret, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.reveal().encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _when(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def payload(transfer: Any) -> dict[str, Any]:
    """What is sent for a finished transfer (no credentials: a link that
    would carry them is never in the record, and so never here)."""
    return {
        "event": "transfer.finished", "transfer_id": transfer.id, "state": transfer.state, "kind": transfer.kind,
        "name": transfer.source_path.rsplit("/", 1)[-1], "destination": transfer.destination_name,
        "path": transfer.remote_path, "size": transfer.size, "md5": transfer.md5 or None,
        "sha256": transfer.sha256 or None, "version_id": transfer.remote_version or None,
        "link": transfer.link or None, "expires": _when(transfer.link_expires_at),
        "finished_at": _when(transfer.finished_at), "error": transfer.last_error or None,
    }  # fmt: skip


class WebhookNotifier:
    """POSTs each finished transfer to ``url``, signed with ``secret``."""

    def __init__(
        self, url: str, secret: Secret | str, *, timeout: float = 10.0, attempts: int = 4,
        states: tuple[str, ...] = ("completed", "failed", "cancelled"), sleep: Any = time.sleep,
    ) -> None:  # fmt: skip
        from urllib.parse import urlsplit

        from .guards import check_base_url

        check_base_url("OCS_TRANSFER_WEBHOOK_URL", url, full_url=True)
        self.url = url
        parts = urlsplit(url)
        #: what messages and logs name: the URL's path may hold a token (chat services' webhooks do)
        self.where = f"{parts.scheme}://{parts.netloc}"
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        if len(self._secret.reveal()) < 16:
            raise ConfigurationError("the webhook secret is too short: use at least 16 characters")
        if timeout <= 0 or attempts < 1:
            raise ConfigurationError("the webhook needs a timeout above 0 seconds and at least 1 attempt")
        self.timeout = timeout
        self.attempts = attempts
        self.states = states
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookNotifier | None:
        """The notifier ``OCS_TRANSFER_WEBHOOK_*`` configure, or None when no URL is set."""
        if not settings.webhook_url:
            return None
        if not settings.webhook_secret:
            raise ConfigurationError("OCS_TRANSFER_WEBHOOK_URL is set but OCS_TRANSFER_WEBHOOK_SECRET is not: the"
                                     " notifications are signed with it")  # fmt: skip
        return cls(settings.webhook_url, Secret(settings.webhook_secret), timeout=settings.webhook_timeout,
                   attempts=settings.webhook_attempts)  # fmt: skip

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.where!r})"

    @hookimpl
    def ocs_transfer_transfer_finished(self, transfer: Any) -> None:
        if transfer.state not in self.states:
            return
        try:
            self.send(payload(transfer))
        except (WebhookError, WebhookRefusedError) as exc:
            log.error("webhook: transfer %d was not notified: %s", transfer.id, exc)

    def send(self, message: dict[str, Any]) -> int:
        """POST ``message``, retrying what may be retried; the HTTP status."""
        from ..retry import call_with_retries

        body = json.dumps(message, sort_keys=True).encode()
        return call_with_retries(lambda: self._post(body), attempts=self.attempts, base_delay=1.0, max_delay=30.0,
                                 sleep=self._sleep)  # fmt: skip

    def _post(self, body: bytes) -> int:
        now = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "ocs-transfer-webhook",
                   TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(self._secret, now, body)}  # fmt: skip
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - checked http(s) URL
                return int(response.status)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise WebhookError(f"the webhook at {self.where} answered {exc.code}") from None
            raise WebhookRefusedError(f"the webhook at {self.where} refused the notification: {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WebhookError(f"the webhook at {self.where} could not be reached: {type(reason).__name__}") from None


def register_from_settings(settings: Settings) -> WebhookNotifier | None:
    """Register the notifier ``OCS_TRANSFER_WEBHOOK_*`` configure (once per
    process; the configuration is checked now, at start-up); it, or None when
    no webhook is configured."""
    from .. import plugins

    notifier = WebhookNotifier.from_settings(settings)
    manager = plugins.get_plugin_manager()
    old = manager.get_plugin(PLUGIN_NAME)
    if old is not None:
        manager.unregister(old)
    if notifier is not None:
        manager.register(notifier, PLUGIN_NAME)
    return notifier
