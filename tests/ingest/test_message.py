"""The parts of the ingest queue that need no broker: the message format,
what each error class does to a message, the queue URL and queue names."""

from __future__ import annotations

import json
import pickle

import pytest

from ocs_transfer.exceptions import (
    AlreadyStoredError,
    BackoffRetryError,
    ConfigurationError,
    FileSpecificationError,
    RateLimitError,
    RetryError,
    TransientStorageError,
)
from ocs_transfer.ingest import IngestMessage, MessageError, QueueURL, Topology
from ocs_transfer.ingest.queue import decide
from ocs_transfer.redact import redact_credentials


def test_the_data_flow_message_and_its_extensions_round_trip() -> None:
    plain = IngestMessage.parse(b'{"filepath": "/data/a.fits"}')
    assert (plain.filepath, dict(plain.metadata), plain.destinations) == ("/data/a.fits", {}, ())
    full = IngestMessage("/data/b.fits.fz", {"OBJECT": "M31", "EXPTIME": 30.0}, ("alice", "archive-copy"))
    assert IngestMessage.parse(full.to_json()) == full
    assert json.loads(plain.to_json()) == {"filepath": "/data/a.fits"}  # nothing the publisher did not say


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b'["/data/a.fits"]', "must be a JSON object"),
        (b"{}", 'no "filepath"'),
        (b'{"filepath": ""}', "non-empty string"),
        (b'{"filepath": 7}', "non-empty string"),
        (b'{"filepath": "data/a.fits"}', "absolute path"),
        (b'{"filepath": "/a.fits", "destination": ["x"]}', "unknown key(s) 'destination'"),
        (b'{"filepath": "/a.fits", "metadata": ["OBJECT"]}', '"metadata" must be an object'),
        (b'{"filepath": "/a.fits", "metadata": {"OBJECT": {"nested": 1}}}', "value of 'OBJECT'"),
        (b'{"filepath": "/a.fits", "destinations": "alice"}', '"destinations" must be a list'),
        (b'{"filepath": "/a.fits", "destinations": [""]}', '"destinations" must be a list'),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(MessageError) as caught:
        IngestMessage.parse(body)
    assert says in str(caught.value)
    assert decide(caught.value, 1, Topology("q"), 10, str).action == "dead"


@pytest.mark.parametrize(
    ("error", "action", "delay"),
    [
        (TransientStorageError("connection reset"), "retry", 5),
        (RetryError("archive answered 502"), "retry", 5),
        (RateLimitError("slow down"), "retry", 30),
        (BackoffRetryError("busy", retry_after=100), "retry", 120),
        (FileSpecificationError("truncated"), "dead", 0),
        (AlreadyStoredError("same bytes"), "ack", 0),
        (KeyError("a bug"), "dead", 0),
        (RuntimeError("something unknown"), "retry", 5),
    ],
)
def test_each_retry_class_has_its_outcome(error: BaseException, action: str, delay: int) -> None:
    outcome = decide(error, 1, Topology("q"), 10, str)
    assert (outcome.action, outcome.delay) == (action, delay)
    assert outcome.error == type(error).__name__


def test_retry_delays_grow_along_the_ladder_and_attempts_are_bounded() -> None:
    topology = Topology("q", (1, 4, 9))
    delays = [decide(RetryError("x"), n, topology, 6, str).delay for n in range(1, 6)]
    assert delays == [1, 4, 9, 9, 9]
    backoff = [decide(BackoffRetryError("x"), n, topology, 6, str).delay for n in range(1, 6)]
    assert backoff == [4, 9, 9, 9, 9]  # a step further along than a plain retry
    last = decide(RetryError("x"), 6, topology, 6, str)
    assert (last.action, last.reason) == ("dead", "gave up after 6 attempts: RetryError: x")


def test_queue_url_never_shows_its_password() -> None:
    url = QueueURL.parse("amqp://ingest:s3cr%40t-pw@mq.example.org:5672/observatory")
    assert str(url) == repr(url).split("'")[1] == "amqp://ingest:***@mq.example.org:5672/observatory"
    assert "s3cr" not in repr(url) + str(url)
    assert url.clean("login failed for s3cr@t-pw") == "login failed for ***"
    with pytest.raises(TypeError):
        pickle.dumps(url)
    assert redact_credentials("amqp://ingest:s3cr%40t-pw@mq:5672/x") == "amqp://ingest:***@mq:5672/x"


@pytest.mark.parametrize(
    ("url", "says"),
    [("http://mq:5672/", "must look like amqp://"), ("amqp:///vhost", "must look like amqp://"),
     ("amqp://u:pw@mq:99999/", "malformed")],
)  # fmt: skip
def test_bad_queue_urls_are_refused_without_their_password(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        QueueURL.parse(url)
    assert says in str(caught.value) and ":pw@" not in str(caught.value)


@pytest.mark.parametrize("name", ["", "with space", "amq.gen-x", "q.dead", "q.retry.5s", "x" * 201])
def test_bad_queue_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="queue name"):
        Topology(name)


@pytest.mark.parametrize("delays", [(), (0,), (5, 5), (30, 5), (1.5,)])
def test_bad_retry_delays_are_refused(delays: tuple[float, ...]) -> None:
    with pytest.raises(ConfigurationError, match="retry delays"):
        Topology("q", delays)  # type: ignore[arg-type]


def test_topology_names_every_queue() -> None:
    topology = Topology("ingest", (5, 60))
    assert topology.queues == ("ingest", "ingest.retry.5s", "ingest.retry.60s", "ingest.dead")


def test_rabbitmq_older_than_3_10_is_refused() -> None:
    from ocs_transfer.ingest.queue import check_server

    with pytest.raises(ConfigurationError, match=r"RabbitMQ 3\.9\.29; the ingest queue needs 3\.10 or later"):
        check_server({"product": "RabbitMQ", "version": "3.9.29"}, "amqp://mq/")
    check_server({"product": "RabbitMQ", "version": "3.10.8"}, "amqp://mq/")
    check_server({"product": b"RabbitMQ", "version": b"4.1.0"}, "amqp://mq/")
    check_server({"product": "LavinMQ", "version": "1.2"}, "amqp://mq/")  # not RabbitMQ: not checked
