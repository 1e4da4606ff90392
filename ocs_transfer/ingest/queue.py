"""The ingest queue on RabbitMQ: its queues, publishing, and the consumer.

For a queue named ``NAME`` there are:

``NAME``
    The messages to ingest. A quorum queue (replicated, durable) with
    ``x-delivery-limit``: a message whose delivery keeps ending without an
    answer (the consumer crashed, was killed, lost its connection) more than
    ``delivery_limit`` times is dead-lettered by the broker into ``NAME.dead``.
``NAME.retry.<N>s``
    One queue per retry delay (``retry_delays``). A message that failed with a
    ``RetryError`` or ``BackoffRetryError`` waits there for ``N`` seconds (the
    queue's message TTL), then the broker dead-letters it back into ``NAME``.
``NAME.dead``
    Messages that will not be retried, with the reason in their headers
    (``x-ocs-reason``, ``x-ocs-error``); those the broker moved there carry its
    own ``x-death`` header (reason ``delivery_limit``).

A message is acknowledged only after the file store confirmed the file (or
the transfers are in the ledger), or after the message was republished (with
publisher confirms) to a retry queue or ``NAME.dead``. A consumer that dies
between the two leaves the message unacknowledged, so it comes back; the
ingester makes a repeat harmless.

The connection runs in the calling thread (heartbeats, acknowledgements);
ingestion runs in a pool of ``concurrency`` threads. Needs ``kombu``
(``pip install ocs-transfer[queue]``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from ..exceptions import BackoffRetryError, ConfigurationError, CredentialError, OcsTransferError, RetryError
from ..redact import Secret, redact, redact_credentials
from ..retry import Kind, classify
from .ingester import Ingested, Ingester
from .message import IngestMessage

__all__ = [
    "ConsumeStats",
    "Outcome",
    "QueueURL",
    "QueueUnavailableError",
    "Topology",
    "check_server",
    "consume",
    "decide",
    "enqueue",
    "open_connection",
]

log = logging.getLogger("ocs_transfer.ingest")

#: Seconds a failed message waits before its next attempt, by attempt (the last repeats).
RETRY_DELAYS: tuple[int, ...] = (5, 30, 120, 600)
#: Attempts of one message (failures with a retry class) before it is dead-lettered.
MAX_ATTEMPTS = 10
#: Deliveries without an answer (consumer crashes) before the broker dead-letters a message.
DELIVERY_LIMIT = 5
#: Seconds for connecting, and for each broker reply (declare, publisher confirm).
TIMEOUT = 30.0
HEARTBEAT = 30
_ATTEMPT = "x-ocs-attempt"
#: Seconds a message may take to move from a retry queue back into the queue once its delay is over.
_DEAD_LETTER_GRACE = 2.0
_REASON_LIMIT = 2000


class QueueUnavailableError(RetryError):
    """The broker cannot be reached or dropped the connection; try again later."""


# -- the URL and the connection ------------------------------------------------------


@attrs.frozen(repr=False)
class QueueURL:
    """A broker URL, ``amqp://USER:PASS@HOST:PORT/VHOST`` (``amqps://`` for TLS).
    The password never shows: ``str()`` and ``repr()`` give ``display``."""

    secret: Secret
    display: str
    password: Secret

    @classmethod
    def parse(cls, url: str | QueueURL) -> QueueURL:
        if isinstance(url, QueueURL):
            return url
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"the queue URL is malformed ({redact_credentials(str(exc))})") from None
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            shown = redact_credentials(url)
            raise ConfigurationError(
                f"the queue URL must look like amqp://USER:PASS@HOST:PORT/VHOST (or amqps://), got {shown!r}"
            )
        password = unquote(parts.password or "")
        user = parts.username or ""
        where = f"{parts.hostname}{f':{port}' if port else ''}"
        display = f"{parts.scheme}://{user}{':***' if password else ''}{'@' if user else ''}{where}{parts.path or '/'}"
        return cls(Secret(url), display, Secret(password))

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"QueueURL({self.display!r})"

    def clean(self, text: str) -> str:
        """``text`` without this URL's password (nor any other credential)."""
        return redact_credentials(redact(text, [self.password]))


def _kombu() -> Any:
    try:
        import kombu
    except ImportError:
        raise ConfigurationError("the ingest queue needs kombu: pip install 'ocs-transfer[queue]'") from None
    return kombu


def open_connection(url: str | QueueURL, *, timeout: float = TIMEOUT, heartbeat: int = HEARTBEAT) -> Any:
    """A connected :class:`kombu.Connection` with publisher confirms on, or a
    classified error that names the broker without its password."""
    kombu = _kombu()
    queue_url = QueueURL.parse(url)
    conn = kombu.Connection(
        queue_url.secret.reveal(), connect_timeout=timeout, heartbeat=heartbeat,
        transport_options={"confirm_publish": True, "read_timeout": timeout, "write_timeout": timeout},
    )  # fmt: skip
    try:
        conn.connect()
    except Exception as exc:
        conn.release()
        raise _broker_error(queue_url, exc, "cannot connect to") from None
    try:
        check_server(conn.connection.server_properties or {}, queue_url)
    except ConfigurationError:
        conn.release()
        raise
    return conn


#: Quorum queues with message TTL and at-least-once dead-lettering came in RabbitMQ 3.10.
MIN_RABBITMQ = (3, 10)


def check_server(properties: Mapping[str, Any], where: QueueURL | str) -> None:
    """Refuse a RabbitMQ older than :data:`MIN_RABBITMQ` (its queues would
    drop messages on their way between the queues). Other brokers are not
    checked."""
    product = properties.get("product", b"")
    version = properties.get("version", b"")
    product = product.decode() if isinstance(product, bytes) else str(product)
    version = version.decode() if isinstance(version, bytes) else str(version)
    if product != "RabbitMQ":
        return
    numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(numbers) == 2 and numbers < MIN_RABBITMQ:
        need = ".".join(map(str, MIN_RABBITMQ))
        raise ConfigurationError(
            f"the broker at {where} is RabbitMQ {version}; the ingest queue needs {need} or later (quorum queues"
            " with message TTL and at-least-once dead-lettering). Upgrade the broker"
        )


def _broker_error(queue_url: QueueURL, exc: BaseException, doing: str) -> OcsTransferError:
    import amqp.exceptions

    why = queue_url.clean(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, amqp.exceptions.AccessRefused):
        return CredentialError(f"the broker at {queue_url} refused the user and password ({why}); check the URL")
    if isinstance(exc, amqp.exceptions.NotAllowed | amqp.exceptions.NotFound):
        return ConfigurationError(f"the broker at {queue_url} refused: {why} (does the virtual host exist?)")
    return QueueUnavailableError(f"{doing} the broker at {queue_url}: {why}")


# -- the queues ------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not name or len(name) > 200 or any(c.isspace() for c in name) or name.startswith("amq."):
        raise ConfigurationError(
            f"queue name {name!r}: use 1-200 characters, no spaces, not starting with 'amq.' (the broker's own)"
        )
    if name.endswith(".dead") or ".retry." in name:
        raise ConfigurationError(f"queue name {name!r} looks like one of the queues made for another ({name}.dead)")
    return name


def _check_delays(delays: Sequence[float]) -> tuple[int, ...]:
    result = tuple(int(d) for d in delays)
    if not result or any(d < 1 or d != original for d, original in zip(result, delays, strict=True)):
        raise ConfigurationError(f"retry delays must be whole seconds, at least 1, got {list(delays)}")
    if list(result) != sorted(set(result)):
        raise ConfigurationError(f"retry delays must increase, got {list(delays)}")
    return result


@attrs.frozen
class Topology:
    """The queues of one ingest queue (see the module doc)."""

    name: str = attrs.field(converter=_check_name)
    retry_delays: tuple[int, ...] = attrs.field(default=RETRY_DELAYS, converter=_check_delays)
    delivery_limit: int = attrs.field(default=DELIVERY_LIMIT)

    @delivery_limit.validator
    def _check_limit(self, _: Any, value: int) -> None:
        if value < 1:
            raise ConfigurationError(f"the delivery limit must be at least 1, got {value}")

    @property
    def dead(self) -> str:
        return f"{self.name}.dead"

    def retry_queue(self, delay: int) -> str:
        return f"{self.name}.retry.{delay}s"

    @property
    def queues(self) -> tuple[str, ...]:
        return (self.name, *(self.retry_queue(d) for d in self.retry_delays), self.dead)

    def _arguments(self, retry: bool) -> Iterator[tuple[str, dict[str, Any]]]:
        back_to = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        yield self.name, {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit,
                          **back_to, "x-dead-letter-routing-key": self.dead}  # fmt: skip
        for delay in self.retry_delays if retry else ():
            yield self.retry_queue(delay), {"x-queue-type": "quorum", "x-message-ttl": delay * 1000,
                                            **back_to, "x-dead-letter-routing-key": self.name}  # fmt: skip
        yield self.dead, {"x-queue-type": "quorum"}

    def declare(self, conn: Any, *, retry: bool = True) -> None:
        """Create the queues (durable quorum queues), or check that they exist
        as we would make them. The publisher needs no retry queues (``retry=False``)."""
        import amqp.exceptions

        for queue, arguments in self._arguments(retry):
            channel = conn.channel()
            try:
                channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)
            except amqp.exceptions.PreconditionFailed as exc:
                raise ConfigurationError(
                    f"queue {queue!r} exists with other settings ({exc.reply_text}); it was not made by"
                    " ocs-transfer with this delivery limit: use another --queue-name, or delete the queue"
                    " once it is empty"
                ) from None
            except amqp.exceptions.ChannelError as exc:  # e.g. 403: the user may not configure queues
                raise ConfigurationError(
                    f"the broker refused to make queue {queue!r} ({exc.reply_text}); give the user 'configure'"
                    " permission on it, or have an administrator create the queues"
                ) from None
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    def counts(self, conn: Any) -> dict[str, int]:
        """Messages ready in each queue (not those delivered and unacknowledged);
        0 for a queue not made yet."""
        import amqp.exceptions

        result = {}
        for queue in self.queues:
            channel = conn.channel()
            try:
                result[queue] = int(channel.queue_declare(queue, passive=True).message_count)
            except amqp.exceptions.NotFound:
                result[queue] = 0  # the broker closed this channel
            else:
                channel.close()
        return result

    def delete(self, conn: Any) -> None:
        """Delete every queue of this topology, with the messages in them."""
        channel = conn.channel()
        try:
            for queue in self.queues:
                channel.queue_delete(queue)
        finally:
            channel.close()


# -- publishing ------------------------------------------------------------------------


def _publish(producer: Any, body: bytes, queue: str, headers: Mapping[str, Any]) -> None:
    """Publish one persistent message and wait for the broker's confirm."""
    producer.publish(
        body, routing_key=queue, exchange="", headers=dict(headers), delivery_mode=2,
        content_type="application/json", content_encoding="utf-8", retry=False, timeout=TIMEOUT,
        confirm_timeout=TIMEOUT,
    )  # fmt: skip


def enqueue(
    url: str | QueueURL,
    queue_name: str,
    files: Iterable[str | Path],
    *,
    metadata: Mapping[str, Any] | None = None,
    destinations: Sequence[str] = (),
    topology: Topology | None = None,
) -> list[IngestMessage]:
    """Publish one message per file (persistent, confirmed by the broker) into
    the ingest queue, creating its queues if needed. Files are checked first:
    each must exist; nothing is published when one does not."""
    messages = []
    for file in files:
        path = Path(file).absolute()
        if not path.is_file():
            raise ConfigurationError(f"{file}: no such file; nothing was queued")
        messages.append(IngestMessage(str(path), dict(metadata or {}), tuple(destinations)))
    topology = topology or Topology(queue_name)
    queue_url = QueueURL.parse(url)
    conn = open_connection(queue_url)
    try:
        topology.declare(conn, retry=False)
        producer = _kombu().Producer(conn.channel())
        for message in messages:
            _publish(producer, message.to_json(), topology.name, {})
    except OcsTransferError:
        raise
    except Exception as exc:
        raise _broker_error(queue_url, exc, "publishing failed at") from None
    finally:
        conn.release()
    return messages


# -- what to do with a message -------------------------------------------------------------


@attrs.frozen
class Outcome:
    """What becomes of one delivered message: ``ack``, ``retry`` (after ``delay``
    seconds) or ``dead`` (into ``NAME.dead``), and why."""

    action: str
    reason: str = ""
    delay: int = 0
    error: str = ""  #: the error's class name
    ingested: Ingested | None = None
    subject: str = ""  #: the message's file, for the log


def decide(
    exc: BaseException, attempt: int, topology: Topology, max_attempts: int, clean: Callable[[str], str]
) -> Outcome:
    """The outcome of attempt number ``attempt`` (from 1) that raised ``exc``."""
    reason = clean(" ".join(f"{type(exc).__name__}: {exc}".split()))[:_REASON_LIMIT]
    decision = classify(exc)
    name = type(exc).__name__
    if decision.kind is Kind.DONE:
        return Outcome("ack", reason, error=name)
    if decision.kind is Kind.NEVER:
        return Outcome("dead", reason, error=name)
    if attempt >= max_attempts:
        return Outcome("dead", f"gave up after {attempt} attempts: {reason}", error=name)
    delays = topology.retry_delays
    if decision.kind is Kind.BACKOFF or isinstance(exc, BackoffRetryError):
        step = min(attempt, len(delays) - 1)  # back off: one step further along than a plain retry
        wait = max(delays[step], decision.retry_after or 0)
        delay = next((d for d in delays if d >= wait), delays[-1])
    else:
        delay = delays[min(attempt - 1, len(delays) - 1)]
    return Outcome("retry", reason, delay=delay, error=name)


# -- the consumer ----------------------------------------------------------------------------


@attrs.define
class ConsumeStats:
    """What a :func:`consume` run did."""

    received: int = 0
    stored: int = 0  #: acknowledged after ingestion
    already: int = 0  #: acknowledged: already stored / nothing to do (NonFatalDoNotRetryError)
    retried: int = 0  #: moved to a retry queue
    dead: int = 0  #: moved to NAME.dead
    returned: int = 0  #: delivered but not answered (the connection was lost; the broker delivers them again)
    reconnects: int = 0


def _attempt_of(headers: Mapping[str, Any] | None) -> int:
    value = (headers or {}).get(_ATTEMPT, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def _kept_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The publisher's own headers (the broker's ``x-`` bookkeeping is not copied)."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith("x-") or k.startswith("x-ocs-")}


class _Consumer:
    def __init__(
        self, queue_url: QueueURL, topology: Topology, ingester: Ingester, *, concurrency: int, max_attempts: int,
        until_idle: bool, max_messages: int | None, stop: threading.Event, idle_seconds: float,
        reconnect_for: float,
    ) -> None:  # fmt: skip
        self.url = queue_url
        self.topology = topology
        self.ingester = ingester
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.until_idle = until_idle
        self.max_messages = max_messages
        self.stop = stop
        self.idle_seconds = idle_seconds
        self.reconnect_for = reconnect_for
        self.stats = ConsumeStats()
        self._delivered: list[tuple[Any, Future[Outcome]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._waker = socket.socketpair()  # pool threads wake the connection's thread through it
        for end in self._waker:
            end.setblocking(False)
        self._last_delivery = time.monotonic()
        self._retry_back = 0.0  #: when the last message this consumer sent to a retry queue is due back

    # Runs in a pool thread.
    def _handle(self, body: bytes, headers: Mapping[str, Any] | None) -> Outcome:
        attempt = _attempt_of(headers)
        subject = self.url.clean(body[:200].decode(errors="replace"))
        try:
            message = IngestMessage.parse(body)
            subject = message.filepath
            ingested = self.ingester.ingest(message)
        except Exception as exc:
            outcome = decide(exc, attempt, self.topology, self.max_attempts, self.url.clean)
            if outcome.action == "retry" or not isinstance(exc, OcsTransferError):
                log.debug("%s: attempt %d failed", subject, attempt, exc_info=True)
            return attrs.evolve(outcome, subject=subject)
        why = "stored"
        if ingested.repeat:
            done = ("already stored",) * ingested.already_stored + ("already scheduled",) * bool(ingested.destinations)
            why = " and ".join(done) or "nothing to do"
        return Outcome("ack", why, ingested=ingested, subject=subject)

    # The rest runs in the connection's thread.
    def _received(self, message: Any) -> None:
        assert self._pool is not None
        self.stats.received += 1
        self._last_delivery = time.monotonic()
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        future = self._pool.submit(self._handle, body, message.headers)
        future.add_done_callback(self._wake)
        self._delivered.append((message, future))

    def _wake(self, _: Future[Outcome]) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed (stopping)
            self._waker[1].send(b"\0")

    def _wait(self, conn: Any) -> None:
        """Take every frame the broker has sent, then sleep until it sends
        more, an ingestion finishes, or a second passes (heartbeats, stop)."""
        while True:
            try:
                conn.drain_events(timeout=0)
            except TimeoutError:
                break
        ready, _, _ = select.select([conn.connection.sock, self._waker[0]], [], [], 1.0)
        if self._waker[0] in ready:
            with contextlib.suppress(BlockingIOError):
                self._waker[0].recv(4096)

    def _settle(self, producer: Any) -> None:
        for item in [item for item in self._delivered if item[1].done()]:
            self._answer(producer, item[0], item[1].result())
            self._delivered.remove(item)  # answered (a lost connection leaves the rest to come back)

    def _answer(self, producer: Any, message: Any, outcome: Outcome) -> None:
        body, headers, what = message.body, message.headers or {}, outcome.subject
        attempt = _attempt_of(headers)
        if outcome.action == "retry":
            kept = {**_kept_headers(headers), _ATTEMPT: attempt + 1, "x-ocs-last-error": outcome.reason}
            _publish(producer, body, self.topology.retry_queue(outcome.delay), kept)
            message.ack()
            self.stats.retried += 1
            # It comes back after its delay (plus the broker's dead-lettering): not idle before then.
            self._retry_back = max(self._retry_back, time.monotonic() + outcome.delay + _DEAD_LETTER_GRACE)
            log.warning("%s: attempt %d failed, again in %d s: %s", what, attempt, outcome.delay, outcome.reason)
        elif outcome.action == "dead":
            dead = {**_kept_headers(headers), "x-ocs-reason": outcome.reason, "x-ocs-error": outcome.error,
                    "x-ocs-queue": self.topology.name, _ATTEMPT: attempt,
                    "x-ocs-failed-at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
            _publish(producer, body, self.topology.dead, dead)
            message.ack()
            self.stats.dead += 1
            log.error("%s: not ingested, moved to %s: %s", what, self.topology.dead, outcome.reason)
        else:
            message.ack()
            ingested = outcome.ingested
            if ingested is not None and not ingested.repeat:
                self.stats.stored += 1
                log.info(
                    "%s: ingested%s%s",
                    what,
                    f" as {ingested.path}" if ingested.path else "",
                    f", scheduled to {', '.join(ingested.destinations)}" if ingested.destinations else "",
                )
            else:
                self.stats.already += 1
                log.info("%s: %s; acknowledged", what, outcome.reason)

    def _done_now(self, conn: Any) -> bool:
        if self.max_messages is not None and self.stats.received >= self.max_messages:
            return True
        now = time.monotonic()
        if not self.until_idle or self._delivered or now - self._last_delivery < self.idle_seconds:
            return False
        if now < self._retry_back:
            return False
        counts = self.topology.counts(conn)
        if any(counts[q] for q in self.topology.queues if q != self.topology.dead):
            self._last_delivery = time.monotonic()  # retries are waiting: look again later
            return False
        return True

    def _session(self, conn: Any) -> None:
        kombu = _kombu()
        self.topology.declare(conn)
        channel = conn.channel()
        prefetch = self.concurrency
        if self.max_messages is not None:
            prefetch = max(1, min(prefetch, self.max_messages - self.stats.received))
        channel.basic_qos(0, prefetch, False)
        producer = kombu.Producer(conn.channel())
        queue = kombu.Queue(self.topology.name, exchange=kombu.Exchange(""), routing_key=self.topology.name,
                            no_declare=True)  # fmt: skip
        consumer = kombu.Consumer(channel, queues=[queue], on_message=self._received, no_ack=False)
        consumer.consume()
        self._last_delivery = time.monotonic()
        consuming = True
        while consuming or self._delivered:
            self._wait(conn)
            conn.heartbeat_check()
            if consuming and (self.stop.is_set() or self._done_now(conn)):
                consumer.cancel()  # take no more; finish what was delivered
                consuming = False
            self._settle(producer)

    def run(self) -> ConsumeStats:
        import amqp.exceptions

        connected_once = False
        lost_at: float | None = None
        wait = 1.0
        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="ocs-ingest") as pool,
            self._waker[0],
            self._waker[1],
        ):
            self._pool = pool
            while True:
                try:
                    conn = open_connection(self.url)
                except QueueUnavailableError as exc:
                    if not connected_once or lost_at is None or time.monotonic() - lost_at > self.reconnect_for:
                        raise
                    log.warning("%s; again in %.0f s", exc, wait)
                    if self.stop.wait(wait):
                        return self.stats
                    wait = min(wait * 2, 30.0)
                    continue
                connected_once, wait = True, 1.0
                try:
                    self._session(conn)
                    return self.stats
                except OcsTransferError:
                    raise
                except (*conn.connection_errors, *conn.channel_errors, amqp.exceptions.MessageNacked) as exc:
                    # (A nacked publish: the retry or dead queue could not take it. Answer nothing; it comes back.)
                    lost_at = time.monotonic()
                    self.stats.reconnects += 1
                    why = self.url.clean(f"{type(exc).__name__}: {exc}")
                    log.warning("lost the broker at %s (%s); reconnecting", self.url, why)
                    # Unanswered messages come back from the broker; let their ingestion finish first.
                    for _, future in self._delivered:
                        future.exception()
                    self.stats.returned += len(self._delivered)
                    self._delivered = []
                    if self.stop.wait(1.0):  # not a tight loop when the broker keeps closing the channel
                        return self.stats
                finally:
                    with contextlib.suppress(Exception):
                        conn.release()


def consume(
    url: str | QueueURL,
    queue_name: str,
    ingester: Ingester,
    *,
    concurrency: int = 1,
    retry_delays: Sequence[int] = RETRY_DELAYS,
    max_attempts: int = MAX_ATTEMPTS,
    delivery_limit: int = DELIVERY_LIMIT,
    until_idle: bool = False,
    max_messages: int | None = None,
    stop: threading.Event | None = None,
    idle_seconds: float = 1.0,
    reconnect_for: float = 300.0,
) -> ConsumeStats:
    """Consume ``queue_name`` and ingest each message with ``ingester``.

    Runs until ``stop`` is set (or SIGTERM/SIGINT in the main thread), after
    ``max_messages`` deliveries, or with ``until_idle`` once nothing is
    waiting in the queue or its retry queues. Messages already delivered are
    finished and answered before it returns. A lost connection is opened again
    for up to ``reconnect_for`` seconds; then :class:`QueueUnavailableError`.
    """
    if concurrency < 1 or max_attempts < 1:
        raise ConfigurationError("concurrency and max_attempts must be at least 1")
    topology = Topology(queue_name, tuple(retry_delays), delivery_limit)
    stop = stop or threading.Event()
    worker = _Consumer(
        QueueURL.parse(url), topology, ingester, concurrency=concurrency, max_attempts=max_attempts,
        until_idle=until_idle, max_messages=max_messages, stop=stop, idle_seconds=idle_seconds,
        reconnect_for=reconnect_for,
    )  # fmt: skip
    with _stop_on_signals(stop):
        return worker.run()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        log.warning("signal %d: finishing the messages delivered, then stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
