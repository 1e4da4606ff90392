"""The Celery executor: Celery worker processes, fed through a broker
(RabbitMQ by default, Redis too), run transfers. The ledger stays the one
source of truth; a message only says "transfer N may be due now".

Tasks (registered by :func:`make_app`):

- ``ocs_transfer.run(transfer_id)``: claim that transfer in the ledger and run
  one attempt (:meth:`Engine.claim`, :meth:`Engine.execute`). Only the id
  travels: credentials stay encrypted in the ledger and are decrypted in the
  worker process that runs the attempt.
- ``ocs_transfer.dispatch``: reclaim transfers whose worker died, then publish
  every due pending transfer that was not published since it became due (a
  retry whose delay ran out, a reclaimed transfer, one scheduled by library
  code), and republish one whose message was lost (see below). Celery beat
  sends it every ``OCS_TRANSFER_HEARTBEAT_INTERVAL`` seconds.
- ``ocs_transfer.periodic``: the lifecycle passes (:meth:`Engine.periodic`:
  reclaim, source deletions, purge, expire, sweep), every
  ``OCS_TRANSFER_PERIODIC_INTERVAL`` seconds, then a dispatch.

``ocs-transfer schedule`` and ``ocs-transfer retry`` publish the transfers they
queue (:func:`publish`) when ``OCS_TRANSFER_EXECUTOR=celery``.

Why nothing runs twice at once and nothing is lost:

- A task delivered twice: the second delivery's claim finds the transfer
  ``in_progress`` (or final) and does nothing. The claim is the ledger's
  atomic ``pending -> in_progress`` update with a fresh lease; every later
  write of the attempt is conditional on that lease.
- A message is acknowledged when its task starts (Celery's early
  acknowledgement), not when the upload ends. RabbitMQ closes the channel of
  a consumer that holds an unacknowledged message longer than its
  ``consumer_timeout`` (30 minutes by default; a per-queue
  ``x-consumer-timeout`` exists only from RabbitMQ 3.12, and the 3.10 servers
  this was built against have just the global setting), so late
  acknowledgement (``acks_late``) would break every upload that takes longer,
  and would add nothing: once a transfer is claimed, the ledger's lease and
  heartbeat are what recover it. A worker killed mid-upload leaves the
  transfer ``in_progress``; its heartbeat stops, and the next dispatch
  reclaims it (at once when the dead process was on the dispatching host,
  else after ``OCS_TRANSFER_STALE_AFTER``) and publishes it again. The next
  attempt removes the dead one's partial upload first.
- A message lost before its claim (a worker killed in the milliseconds
  between acknowledging and claiming, a broker that lost a queue, a publish
  that failed): the transfer is still ``pending`` in the ledger. Each
  ``ocs_transfer.queued_at`` records the last publish; when the queue is
  empty, a dispatch republishes due transfers published more than
  ``OCS_TRANSFER_STALE_AFTER`` ago. A duplicate that this makes is harmless
  (see the first point).
- Retries follow the ledger's schedule (``OCS_TRANSFER_RETRY_DELAYS``): a
  failed attempt goes back to ``pending`` with a later ``next_attempt_at``,
  and the dispatch after that time publishes it. Celery's own retries are
  not used, and a message for a transfer that is not due yet does nothing.

No result backend: the ledger has the results.

Run a worker with ``ocs-transfer worker --celery`` or
``celery -A ocs_transfer.transfer.celery worker -Q ocs_transfer``, and beat
(one per deployment) with ``ocs-transfer beat`` or
``celery -A ocs_transfer.transfer.celery beat``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy import or_, select, update

from ..settings import Settings
from .models import PENDING, TransferRow

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["DISPATCH", "PERIODIC", "RUN", "dispatch", "make_app", "publish", "worker_argv"]

log = logging.getLogger("ocs_transfer.transfer.engine")  # every engine module logs under one name

RUN = "ocs_transfer.run"
DISPATCH = "ocs_transfer.dispatch"
PERIODIC = "ocs_transfer.periodic"

#: Transfers published per broker round of :func:`publish` (and ledger update).
_BATCH = 500


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: from the environment): the
    broker ``OCS_TRANSFER_BROKER_URL``, the queue ``OCS_TRANSFER_CELERY_QUEUE``,
    no result backend, the tasks and the beat schedule."""
    settings = settings if settings is not None else Settings.from_env()
    app = Celery("ocs_transfer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=False,  # acknowledged on start: see the module's docs
        worker_prefetch_multiplier=1,  # a worker holds no more messages than it has free processes
        task_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=settings.connect_timeout,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a broker restart
        worker_cancel_long_running_tasks_on_connection_loss=False,  # an upload outlives a broker restart
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 2.0},
        beat_scheduler="celery.beat:Scheduler",  # in memory: the schedule is two fixed intervals
        beat_schedule={
            DISPATCH: {"task": DISPATCH, "schedule": float(max(1, settings.heartbeat_interval)),
                       "options": {"expires": float(max(1, settings.heartbeat_interval))}},
            PERIODIC: {"task": PERIODIC, "schedule": float(max(1, settings.periodic_interval)),
                       "options": {"expires": float(max(1, settings.periodic_interval))}},
        },
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    app.conf["ocs_transfer_settings"] = settings

    def run(transfer_id: int) -> None:
        """Claim transfer ``transfer_id`` and run one attempt, when it is due
        and no one else runs it."""
        engine = _engine(settings)
        claimed = engine.claim(1, ids=[int(transfer_id)])
        if not claimed:
            log.debug("transfer %s is not due or is taken; nothing to do", transfer_id)
            return
        engine.execute(*claimed[0])

    def dispatch_task() -> None:
        dispatch(_engine(settings), app)

    def periodic_task() -> None:
        engine = _engine(settings)
        engine.periodic()
        dispatch(engine, app)

    for name, func in ((RUN, run), (DISPATCH, dispatch_task), (PERIODIC, periodic_task)):
        app.task(name=name, ignore_result=True)(func)

    return app


# -- one engine per worker process --------------------------------------------------------

_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine(settings: Settings) -> Engine:
    """This process's engine, made on first use (after the fork: a prefork
    child never shares its parent's database connections), with a heartbeat
    thread for the transfers it runs."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            from .engine import Engine

            engine = Engine.from_settings(settings)
            engine.check_credentials()  # a key error fails here, before any claim
            threading.Thread(target=_heartbeat, args=(engine,), name="ocs-transfer-heartbeat", daemon=True).start()
            _ENGINE = engine
        return _ENGINE


def _heartbeat(engine: Engine) -> None:
    stop = threading.Event()
    while not stop.wait(engine.settings.heartbeat_interval):
        try:
            engine.beat()
        except Exception as exc:
            log.warning("heartbeat failed: %s", type(exc).__name__)


def _forget_parent_engine(**_: Any) -> None:
    global _ENGINE
    _ENGINE = None


worker_process_init.connect(_forget_parent_engine, weak=False)


# -- publishing ---------------------------------------------------------------------------


def publish(engine: Engine, ids: Iterable[int], app: Celery | None = None) -> int:
    """Publish ``ocs_transfer.run`` for each transfer id and record when
    (``queued_at``); returns how many were published. Raises the broker's
    error when it cannot be reached: the transfers stay queued in the ledger
    and a later dispatch publishes them."""
    app = app if app is not None else make_app(engine.settings)
    wanted = list(ids)
    done = 0
    with app.producer_or_acquire() as producer:
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            for transfer_id in batch:
                app.send_task(RUN, args=(transfer_id,), producer=producer, retry=True)
            with engine.ledger.session() as session:
                session.execute(
                    update(TransferRow).where(TransferRow.id.in_(batch)).values(queued_at=engine.clock())
                )
            done += len(batch)
    return done


def _queue_empty(app: Celery) -> bool:
    """Whether the task queue holds no message (any delivered one is being
    run or was acknowledged). Unknown (the queue does not exist yet) counts as
    empty."""
    queue = app.conf.task_default_queue
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        try:
            ok = channel.queue_declare(queue=queue, passive=True)
        except Exception as exc:  # the broker says no such queue (it closes the channel on amqp)
            log.debug("queue %s: %s", queue, type(exc).__name__)
            return True
        return int(ok.message_count) == 0


def dispatch(engine: Engine, app: Celery) -> int:
    """Reclaim transfers whose worker died, then publish due pending
    transfers not published since they became due, and (when the queue is
    empty) those published longer than ``stale_after`` ago, whose message was
    lost. Returns how many were published."""
    engine.reclaim()
    now = engine.clock()
    queued = TransferRow.queued_at
    unpublished = or_(queued.is_(None), queued < TransferRow.next_attempt_at)
    wanted = unpublished
    if _queue_empty(app):
        wanted = or_(unpublished, queued < now - engine.settings.stale_after)
    query = (
        select(TransferRow.id)
        .where(TransferRow.state == PENDING, TransferRow.next_attempt_at <= now, wanted)
        .order_by(TransferRow.next_attempt_at, TransferRow.id)
    )
    with engine.ledger.session() as session:
        ids = list(session.scalars(query))
    if ids:
        log.info("dispatch: publishing %d due transfer(s)", len(ids))
        publish(engine, ids, app)
    return len(ids)


def worker_argv(settings: Settings, processes: int, *extra: str) -> list[str]:
    """The ``celery worker`` arguments ``ocs-transfer worker --celery`` runs
    with: the deployment's queue, ``processes`` prefork processes, a node name
    unique on this host."""
    return ["worker", "-Q", settings.celery_queue, "--concurrency", str(processes), "--loglevel", "INFO",
            "-n", f"ocs-transfer-{os.getpid()}@{socket.gethostname()}", "--without-gossip", "--without-mingle",
            *extra]  # fmt: skip


def run_worker(settings: Settings, processes: int, extra: Sequence[str] = ()) -> None:
    """Run a Celery worker for the transfers (blocks until it stops)."""
    make_app(settings).worker_main(worker_argv(settings, processes, *extra))


def run_beat(settings: Settings, extra: Sequence[str] = ()) -> None:
    """Run Celery beat with the dispatch and periodic schedule (one per deployment)."""
    make_app(settings).start(["beat", "--loglevel", "INFO", *extra])


def __getattr__(name: str) -> Any:
    """``app`` for ``celery -A ocs_transfer.transfer.celery``: made from the
    environment when first asked for."""
    if name in ("app", "celery"):
        value = make_app()
        globals()["app"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
