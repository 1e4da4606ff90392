"""The ledger's tables (SQLAlchemy 2 declarative).

Times are UNIX seconds (floats) so every database compares them the same way and
an injected clock is all the engine needs. JSON is kept as text.

Ids are never reused (``AUTOINCREMENT`` on SQLite; PostgreSQL's sequences never
reuse): a transfer or destination id names one record for the ledger's life.
Columns holding what users type are ``Text`` unless the value is checked
against a length when it is entered (destination names: 200). Every change to
these tables comes with an Alembic migration in :mod:`.migrations`.
"""

from __future__ import annotations

import uuid as uuid_mod

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "BundleMemberRow", "DestinationRow", "SourceFileRow", "TransferRow", "STATES", "FINAL_STATES"]

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
FINAL_STATES = (COMPLETED, FAILED, CANCELLED)
#: What a source file row stands for: one file, or a bundle (a zip of its members, made when it is sent).
FILE = "file"
BUNDLE = "bundle"


class Base(DeclarativeBase):
    pass


class DestinationRow(Base):
    __tablename__ = "ocs_destinations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: the destination's identity: transfers keep it in their snapshot and run only
    #: against the destination that still has it
    uuid: Mapped[str] = mapped_column(String(36), default=lambda: str(uuid_mod.uuid4()))
    name: Mapped[str] = mapped_column(String(200), unique=True)  #: identifier users type (checked: <= 200)
    display_name: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text, default="")
    layout: Mapped[str] = mapped_column(Text, default="flat")  #: a name or a template of any length
    comment: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    delete_source: Mapped[bool] = mapped_column(Boolean, default=False)
    #: delete files from the destination this many hours after their transfer completed
    keep_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scope: Mapped[str] = mapped_column(String(16), default="personal")
    owner_id: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[str] = mapped_column(Text, default="{}")  #: JSON, non-secret provider options
    credentials: Mapped[str] = mapped_column(Text, default="{}")  #: JSON {field: "v1:kid:..."}
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_test_message: Mapped[str] = mapped_column(Text, default="")
    last_test_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_ocs_destinations_scope_owner", "scope", "owner_id"),
        UniqueConstraint("uuid", name="uq_ocs_destinations_uuid"),
        {"sqlite_autoincrement": True},
    )


class SourceFileRow(Base):
    """One scheduled source file; its transfers hang off it."""

    __tablename__ = "ocs_source_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Text)  #: store name or URL, resolved by the engine's source resolver
    path: Mapped[str] = mapped_column(Text)
    #: the source as it was when scheduled (size, modification time): an attempt
    #: that finds it otherwise, before or after reading it, fails and keeps it
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the sha256 the first completed transfer read; every other one must match it
    sha256: Mapped[str] = mapped_column(String(64), default="")
    #: how many transfers were scheduled for this file: the source is deleted only
    #: when that many transfer records exist and all completed for these bytes
    transfer_count: Mapped[int] = mapped_column(Integer, default=0)
    context: Mapped[str] = mapped_column(Text, default="{}")  #: JSON (target, project, ...) for layouts
    delete_source: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "" (keep), "pending" (delete when all completed), "deleting", "deleted",
    #: "kept" (a transfer record was purged unfinished, or the source changed: never deleted)
    delete_state: Mapped[str] = mapped_column(String(16), default="")
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    #: "file", or "bundle": ``path`` is then the zip's name and its members are in ocs_bundle_members
    kind: Mapped[str] = mapped_column(String(16), default=FILE, server_default=FILE)

    __table_args__ = ({"sqlite_autoincrement": True},)


class BundleMemberRow(Base):
    """One file of a bundle, as it was when the bundle was scheduled."""

    __tablename__ = "ocs_bundle_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("ocs_source_files.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  #: order in the archive
    store: Mapped[str] = mapped_column(Text)  #: store name or URL, as SourceFileRow.store
    path: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)  #: its name in the archive
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_ocs_bundle_members_file", "file_id", "position"),
        {"sqlite_autoincrement": True},
    )


class TransferRow(Base):
    __tablename__ = "ocs_transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("ocs_source_files.id", ondelete="CASCADE"))
    destination_id: Mapped[int] = mapped_column(Integer)  #: no FK: the destination may be removed
    destination_name: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[str] = mapped_column(Text)  #: JSON of the destination when scheduled (no credentials)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease: Mapped[str | None] = mapped_column(String(64), nullable=True)
    worker: Mapped[str] = mapped_column(Text, default="")  #: host:pid:tag (host names reach 253)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    md5: Mapped[str] = mapped_column(String(32), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    provider_checksum: Mapped[str] = mapped_column(Text, default="")
    remote_path: Mapped[str] = mapped_column(Text, default="")
    remote_version: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: when ``link`` stops working (None: it does not expire by itself, or there is none)
    link_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: when the transfer was last published to a broker as a task (the Celery executor)
    queued_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_ocs_transfers_due", "state", "next_attempt_at"),
        Index("ix_ocs_transfers_file", "file_id"),
        {"sqlite_autoincrement": True},
    )
