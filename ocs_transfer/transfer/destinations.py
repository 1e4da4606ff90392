"""Destinations: where transfers go, with their encrypted credentials.

A destination names a provider, a path inside it, a layout, who owns it (a
scope: ``personal``, ``organization`` or ``project``, with the owner's id),
provider options (non-secret) and credentials (secret, encrypted with
:mod:`.crypto`, bound to the row and field). Credentials never leave this module
except as :class:`~ocs_transfer.redact.Secret` values handed to a store.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import attrs
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..exceptions import ConfigurationError, CredentialError, OcsTransferError
from ..redact import Secret, redact
from ..settings import Settings
from ..storage.base import ConnectionTestResult, FileStore
from ..storage.options import option_problem
from .crypto import KeyRing
from .guards import check_ambient_credentials, check_local_folders, check_local_roots
from .guards import check_endpoints as check_endpoint_names
from .ledger import Ledger
from .models import DestinationRow

__all__ = [
    "Destination",
    "DestinationNotFoundError",
    "Destinations",
    "LAYOUTS",
    "parse_retention",
    "SCOPES",
    "check_destination",
    "check_endpoints",
    "open_store",
]

SCOPES = ("personal", "organization", "project")
#: The built-in layout names (see :mod:`ocs_transfer.storage.layouts`; templates work too).
LAYOUTS = ("flat", "by_target", "by_project_and_target", "archive")
log = logging.getLogger(__name__)

_TABLE = DestinationRow.__tablename__
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")
#: Fields :meth:`Destinations.edit` may change (the provider may not).
EDITABLE = (
    "display_name", "path", "layout", "comment", "description", "enabled", "active", "delete_source",
    "keep_hours", "keep_days", "scope", "owner_id", "options",
)  # fmt: skip
_RETENTION = re.compile(r"^\s*(\d+)\s*([hd]?)\s*$", re.IGNORECASE)


def parse_retention(value: Any) -> int | None:
    """How many hours a retention means: a whole number of days (``7``), or a
    duration in hours or days (``"48h"``, ``"2d"``). ``None`` means keep
    forever. Anything else, or less than one hour, is refused with what to write."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        amount, unit = value, "d"
    else:
        match = _RETENTION.match(value) if isinstance(value, str) else None
        if match is None:
            raise ConfigurationError(
                f"keep_days must be a whole number of days or a duration such as 48h or 2d; got {value!r}"
            )
        amount, unit = int(match.group(1)), (match.group(2) or "d").lower()
    hours = amount * 24 if unit == "d" else amount
    if hours < 1:
        raise ConfigurationError(f"keep_days must be at least 1 hour (e.g. 1h or 1), or empty; got {value!r}")
    return hours


def _retention_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with ``keep_days`` (days or a duration) turned into ``keep_hours``."""
    if "keep_days" not in fields:
        return fields
    out = dict(fields)
    hours = parse_retention(out.pop("keep_days"))
    if "keep_hours" in out and out["keep_hours"] != hours:
        raise ConfigurationError("give keep_hours or keep_days, not both")
    out["keep_hours"] = hours
    return out


class DestinationNotFoundError(ConfigurationError, LookupError):
    """No destination has this name or id."""


@attrs.frozen(kw_only=True)
class Destination:
    """A destination as callers see it: everything but the credentials (only
    their field names)."""

    id: int
    uuid: str  #: never reused: a transfer runs only against the destination with its snapshot's uuid
    name: str
    display_name: str
    provider: str
    path: str
    layout: str
    comment: str
    description: str
    enabled: bool
    active: bool
    delete_source: bool
    keep_hours: int | None  #: delete files from it this many hours after their transfer completed
    scope: str
    owner_id: str
    options: dict[str, Any]
    credential_fields: tuple[str, ...]
    last_test_ok: bool | None
    last_test_message: str
    last_test_at: float | None
    created_at: float
    updated_at: float

    @property
    def usable(self) -> bool:
        """Offered for new transfers (enabled and active)."""
        return self.enabled and self.active

    @property
    def keep_days(self) -> int | float | None:
        """:attr:`keep_hours` in days (``2`` for 48 hours, ``1.5`` for 36), as
        destinations had before retention was counted in hours."""
        if self.keep_hours is None:
            return None
        days = self.keep_hours / 24
        return int(days) if days.is_integer() else days

    def snapshot(self) -> dict[str, Any]:
        """What a queued transfer keeps of this destination (no credentials)."""
        keep = ("id", "uuid", "name", "provider", "path", "layout", "delete_source", "keep_hours", "options", "scope")
        return {k: getattr(self, k) for k in keep}

    @classmethod
    def from_row(cls, row: DestinationRow) -> Destination:
        return cls(
            id=row.id, uuid=row.uuid, name=row.name, display_name=row.display_name, provider=row.provider,
            path=row.path,
            layout=row.layout, comment=row.comment, description=row.description, enabled=row.enabled,
            active=row.active, delete_source=row.delete_source, keep_hours=row.keep_hours, scope=row.scope,
            owner_id=row.owner_id, options=json.loads(row.options or "{}"),
            credential_fields=tuple(sorted(json.loads(row.credentials or "{}"))),
            last_test_ok=row.last_test_ok, last_test_message=row.last_test_message, last_test_at=row.last_test_at,
            created_at=row.created_at, updated_at=row.updated_at,
        )  # fmt: skip


def _check(field: str, value: Any) -> Any:
    if field == "scope" and value not in SCOPES:
        raise ConfigurationError(f"scope {value!r} is not one of {', '.join(SCOPES)}")
    if field == "layout":
        from ..storage.layouts import get_layout

        get_layout(value, context_fields=("target", "project"))  # a clear error for a bad name or template
    if field == "path" and value:
        from ..storage.paths import safe_path

        parts = [p for p in str(value).split("/") if p]  # as the engine joins it: leading, doubled '/' ignored
        try:
            safe_path("/".join(parts), allow_root=True)
        except OcsTransferError as exc:
            raise ConfigurationError(
                f"destination path {str(value)[:200]!r} must be a folder inside the destination, such as"
                f" /observatory/fits: {exc}"
            ) from None
    if field == "keep_hours" and value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1
    ):
        raise ConfigurationError(f"keep_hours must be a whole number of hours >= 1, or empty; got {value!r}")
    if field == "options":
        if not isinstance(value, Mapping):
            raise ConfigurationError("options must be a mapping of provider option names to values")
        return json.dumps(dict(value), sort_keys=True)
    if field in ("enabled", "active", "delete_source"):
        return bool(value)
    return value


def _looks_secret(name: str) -> bool:
    """A name that may hold a secret (only to refuse storing such a value in
    the clear; what is a credential is what the provider declares)."""
    return any(w in name.lower() for w in ("secret", "token", "password", "key", "credential"))


def check_destination(
    provider: str | type[FileStore],
    options: Mapping[str, Any],
    credentials: Mapping[str, Any],
    *,
    scope: str | None,
    settings: Settings | None,
) -> None:
    """Every check of :mod:`.guards` for a destination: its endpoints (all
    scopes), and for user-made scopes its identity and local folders.
    ``scope=None`` (a store built outside a destination) checks endpoints only."""
    from .. import plugins

    cls = plugins.get_provider(provider) if isinstance(provider, str) else provider
    check_endpoint_names(options, settings, tuple(cls.endpoint_options))
    check_ambient_credentials(cls, options, credentials, scope, settings)
    check_local_roots(cls, options, scope, settings)
    check_local_folders(cls, options)


#: Provider options that name a server the service will connect to, for a
#: provider that does not declare its own (``FileStore.endpoint_options``).
ENDPOINT_OPTIONS = FileStore.endpoint_options


def check_endpoints(options: Mapping[str, Any], settings: Settings | None, provider: str | None = None) -> None:
    """:func:`.guards.check_endpoints` on exactly the ``endpoint_options``
    the provider declares (the usual names without a provider): well formed
    (one reading for every URL parser) and, when
    ``OCS_TRANSFER_ENDPOINT_ALLOWLIST`` is set, naming an allowed host."""
    from .. import plugins

    names = ENDPOINT_OPTIONS if provider is None else tuple(plugins.get_provider(provider).endpoint_options)
    check_endpoint_names(options, settings, names)


def open_store(
    provider: str,
    options: Mapping[str, Any],
    credentials: Mapping[str, Secret],
    *,
    settings: Settings | None = None,
    scope: str | None = None,
) -> FileStore:
    """Build the store for a destination (``provider`` with ``options`` and
    decrypted ``credentials``), after :func:`check_destination` for ``scope``."""
    from ..storage import get_store

    check_destination(provider, options, credentials, scope=scope, settings=settings)
    return get_store(provider, credentials=dict(credentials), settings=settings, **options)


def _merge_options(row: DestinationRow, changes: Mapping[str, Any], unset: Iterable[str]) -> dict[str, Any]:
    """The row's options with ``changes`` applied and ``unset`` removed."""
    if not isinstance(changes, Mapping):
        raise ConfigurationError("options must be a mapping of provider option names to values")
    merged: dict[str, Any] = json.loads(row.options or "{}")
    for key in unset:
        if key not in merged:
            have = ", ".join(sorted(merged)) or "none"
            raise ConfigurationError(f"destination {row.name!r} has no option {key!r} to unset (it has: {have})")
        del merged[key]
    merged.update(changes)
    return merged


def check_options(provider: type[FileStore], options: Mapping[str, Any]) -> dict[str, Any]:
    """Check provider ``options`` against the provider's ``Config`` when they
    are entered: unknown names, missing required ones, values of the wrong
    type and URLs that are not http(s) are refused with what to do. Returns
    the options with command-line strings typed (``tls=False`` → ``False``)."""
    config_cls = getattr(provider, "Config", None)
    if not isinstance(options, Mapping):
        raise ConfigurationError("options must be a mapping of provider option names to values")
    if config_cls is None or not attrs.has(config_cls):
        return dict(options)
    options = _typed(config_cls, options)
    try:
        attrs.resolve_types(config_cls)
    except Exception:  # an unresolvable annotation: check names only
        log.debug("cannot resolve the option types of provider %r", provider.name)
    fields = {f.name: f for f in attrs.fields(config_cls)}
    where = f"provider {provider.name!r}"
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigurationError(
            f"{where} has no option {', '.join(map(repr, unknown))}; its options are: {', '.join(fields)}"
        )
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in options]
    if missing:
        raise ConfigurationError(
            f"{where} needs option {', '.join(missing)}: give it with --option {missing[0]}=VALUE"
        )
    for name, value in options.items():
        problem = option_problem(name, value, fields[name].type)
        if problem:
            raise ConfigurationError(f"{where}: option {name}={value!r} {problem}")
    try:
        config_cls(**options)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise ConfigurationError(f"bad options for {where}: {exc}") from None
    return dict(options)


def _typed(config_cls: type[Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Strings typed by their field's annotation (:func:`~ocs_transfer.storage.options.coerce_option`)."""
    import typing

    from ..storage.options import coerce_option

    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:
        return dict(options)
    return {k: coerce_option(k, hints[k], v) if k in hints and isinstance(v, str) else v for k, v in options.items()}


class Destinations:
    """Create, edit, list and test destinations in a :class:`Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        keyring: KeyRing | None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self._keyring = keyring
        self.settings = settings
        self.clock = clock

    def __repr__(self) -> str:
        return f"Destinations({self.ledger!r})"

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            raise ConfigurationError(
                "no credential key ring is configured: set OCS_TRANSFER_KEYS and OCS_TRANSFER_ACTIVE_KEY"
            )
        return self._keyring

    # -- lookup ----------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, ref: str | int, *, lock: bool = False) -> DestinationRow:
        query = select(DestinationRow)
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            query = query.where(or_(DestinationRow.id == int(ref), DestinationRow.name == str(ref)))
        else:
            query = query.where(DestinationRow.name == ref)
        if lock:
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            raise DestinationNotFoundError(f"no destination {ref!r} (see `ocs-transfer dest list`)")
        return row

    def get(self, ref: str | int) -> Destination:
        """The destination with this name or id."""
        with self.ledger.session() as session:
            return Destination.from_row(self._row(session, ref))

    def find(self, ref: str | int) -> Destination | None:
        try:
            return self.get(ref)
        except DestinationNotFoundError:
            return None

    def list(self, *, scope: str | None = None, owner_id: str | None = None) -> builtins.list[Destination]:
        with self.ledger.session() as session:
            query = select(DestinationRow).order_by(DestinationRow.scope, DestinationRow.name)
            if scope is not None:
                query = query.where(DestinationRow.scope == _check("scope", scope))
            if owner_id is not None:
                query = query.where(DestinationRow.owner_id == owner_id)
            return [Destination.from_row(r) for r in session.scalars(query)]

    def usable(
        self, *, user_id: str, organization_ids: Iterable[str] = (), project_ids: Iterable[str] = ()
    ) -> dict[str, builtins.list[Destination]]:
        """What this user may pick for new transfers, grouped by scope: their
        personal destinations and those of the organizations and projects the
        caller says they belong to. Disabled or inactive ones are left out."""
        owners = {"personal": [user_id], "organization": list(organization_ids), "project": list(project_ids)}
        grouped: dict[str, builtins.list[Destination]] = {scope: [] for scope in SCOPES}
        with self.ledger.session() as session:
            for scope, ids in owners.items():
                if not ids:
                    continue
                query = (
                    select(DestinationRow)
                    .where(DestinationRow.scope == scope, DestinationRow.owner_id.in_(ids))
                    .where(DestinationRow.enabled.is_(True), DestinationRow.active.is_(True))
                    .order_by(DestinationRow.display_name, DestinationRow.name)
                )
                grouped[scope] = [Destination.from_row(r) for r in session.scalars(query)]
        return grouped

    # -- changes ---------------------------------------------------------------------

    def _encrypt_into(self, row: DestinationRow, credentials: Mapping[str, str | Secret | None]) -> None:
        """Merge ``credentials`` into the row; empty values keep what is stored."""
        stored: dict[str, str] = json.loads(row.credentials or "{}")
        for field, value in credentials.items():
            plain = value.reveal() if isinstance(value, Secret) else value
            if not plain:
                continue
            stored[field] = self.keyring.encrypt(plain, table=_TABLE, record_id=row.id, field=f"credentials.{field}")
        row.credentials = json.dumps(stored, sort_keys=True)

    def add(
        self,
        name: str,
        provider: str,
        *,
        credentials: Mapping[str, str | Secret | None] | None = None,
        **fields: Any,
    ) -> Destination:
        """Create a destination. ``fields`` are those of :data:`EDITABLE`."""
        if not _NAME.match(name):
            raise ConfigurationError(
                f"destination name {name!r} must start with a letter or digit and use only letters, digits,"
                " '.', '_', '@' or '-' (at most 200)"
            )
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise ConfigurationError(f"unknown destination field(s): {', '.join(sorted(unknown))}")
        fields = _retention_fields(fields)
        from .. import plugins

        cls = plugins.get_provider(provider)  # a clear error now rather than at the first transfer
        now = self.clock()
        options = fields.get("options") or {}
        given = {k: v for k, v in (credentials or {}).items() if v}
        check_destination(cls, options, given, scope=fields.get("scope", "personal"), settings=self.settings)
        typed = check_options(cls, options)
        if "options" in fields:
            fields["options"] = typed
        values = {k: _check(k, v) for k, v in fields.items()}
        values.setdefault("display_name", name)
        with self.ledger.session() as session:
            if session.scalars(select(DestinationRow.id).where(DestinationRow.name == name)).first() is not None:
                raise ConfigurationError(f"a destination named {name!r} exists already; pick another name")
            row = DestinationRow(name=name, provider=provider.lower(), created_at=now, updated_at=now, **values)
            session.add(row)
            session.flush()  # the id is part of the credentials' associated data
            if credentials:
                self._encrypt_into(row, credentials)
            return Destination.from_row(row)

    def edit(
        self,
        ref: str | int,
        *,
        credentials: Mapping[str, str | Secret | None] | None = None,
        unset_options: Iterable[str] = (),
        **fields: Any,
    ) -> Destination:
        """Change fields; empty credential values keep the stored ones. The
        provider cannot change. ``options`` are merged into the stored ones
        (a key given replaces its value, the others stay); ``unset_options``
        names options to remove."""
        if "provider" in fields:
            raise ConfigurationError(
                "the provider of a destination cannot change; create a new destination instead"
            )
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise ConfigurationError(f"unknown destination field(s): {', '.join(sorted(unknown))}")
        fields = _retention_fields(fields)
        unset = list(unset_options)
        with self.ledger.session() as session:
            row = self._row(session, ref, lock=True)
            if "options" in fields or unset:
                fields["options"] = _merge_options(row, fields.get("options") or {}, unset)
            if "options" in fields:
                from .. import plugins

                provider_cls = plugins.get_provider(row.provider)
                check_endpoint_names(fields["options"], self.settings, tuple(provider_cls.endpoint_options))
                fields["options"] = check_options(provider_cls, fields["options"])
            values = {k: _check(k, v) for k, v in fields.items()}
            for key, value in values.items():
                setattr(row, key, value)
            if credentials:
                self._encrypt_into(row, credentials)
            self._recheck(row)
            row.updated_at = self.clock()
            return Destination.from_row(row)

    def _recheck(self, row: DestinationRow) -> None:
        """:func:`check_destination` on a changed row (only credential names are needed)."""
        present = dict.fromkeys(json.loads(row.credentials or "{}"), True)
        check_destination(row.provider, json.loads(row.options or "{}"), present, scope=row.scope,
                          settings=self.settings)  # fmt: skip

    def set_enabled(self, ref: str | int, enabled: bool) -> Destination:
        return self.edit(ref, enabled=enabled)

    def remove(self, ref: str | int) -> None:
        """Delete a destination. Its queued transfers fail when they come up."""
        with self.ledger.session() as session:
            session.delete(self._row(session, ref, lock=True))

    def remove_credentials(self, ref: str | int, fields: Iterable[str]) -> Destination:
        with self.ledger.session() as session:
            row = self._row(session, ref, lock=True)
            stored: dict[str, str] = json.loads(row.credentials or "{}")
            for field in fields:
                stored.pop(field, None)
            row.credentials = json.dumps(stored, sort_keys=True)
            self._recheck(row)
            row.updated_at = self.clock()
            return Destination.from_row(row)

    # -- credentials -----------------------------------------------------------------

    def _decrypt_row(self, row: DestinationRow) -> dict[str, Secret]:
        return self.decrypt_stored(row.id, row.credentials)

    def decrypt_stored(self, record_id: int, stored: str | None) -> dict[str, Secret]:
        """Decrypt the credentials column of destination ``record_id`` as read
        from the ledger (the engine reads it in the transaction that claims
        transfers, and checks the uuid itself)."""
        fields: dict[str, str] = json.loads(stored or "{}")
        return {
            field: self.keyring.decrypt(blob, table=_TABLE, record_id=record_id, field=f"credentials.{field}")
            for field, blob in fields.items()
        }

    def credentials(self, ref: str | int, *, uuid: str | None = None) -> dict[str, Secret]:
        """The decrypted credentials, for handing to a store. With ``uuid``,
        only if the destination ``ref`` still is the one with that uuid (a
        removed destination's id must never lend another's credentials)."""
        with self.ledger.session() as session:
            row = self._row(session, ref)
            if uuid is not None and row.uuid != uuid:
                raise DestinationNotFoundError(
                    f"destination {ref!r} is not the one this was made for (it was removed and replaced)"
                )
            return self._decrypt_row(row)

    def save_credentials(self, ref: str | int, credentials: Mapping[str, Secret | str]) -> None:
        """Store credentials a provider rotated (e.g. a new refresh token),
        encrypted, under a row lock so concurrent workers do not interleave."""
        with self.ledger.session() as session:
            row = self._row(session, ref, lock=True)
            self._encrypt_into(row, credentials)
            row.updated_at = self.clock()

    def save_rotated(self, ref: str | int, store: FileStore) -> None:
        """Save credentials a store rotated while it worked. A provider whose
        refresh token changes on use sets ``store.rotated_credentials`` to
        ``{field: Secret(new value)}``; they are stored encrypted, under the row
        lock, and the attribute is cleared."""
        rotated = getattr(store, "rotated_credentials", None)
        if not rotated:
            return
        try:
            self.save_credentials(ref, rotated)
        except DestinationNotFoundError:
            log.warning("destination %r was removed; its rotated credentials were dropped", ref)
        store.rotated_credentials = None  # type: ignore[attr-defined]

    def rotate_keys(self, *, batch: int = 100, limit: int | None = None) -> int:
        """Re-encrypt every credential not under the active key. Row by row,
        each in its own transaction: interrupted (or stopped after ``limit``
        rows), every row still decrypts with the old or the new key; run again,
        it finishes; run once more, it does nothing. Returns the number of rows
        re-encrypted."""
        done = 0
        last_id = 0
        while limit is None or done < limit:
            with self.ledger.session() as session:
                ids = list(
                    session.scalars(
                        select(DestinationRow.id).where(DestinationRow.id > last_id).order_by(DestinationRow.id)
                        .limit(batch)
                    )
                )  # fmt: skip
            if not ids:
                return done
            for row_id in ids:
                if limit is not None and done >= limit:
                    break
                last_id = row_id
                with self.ledger.session() as session:
                    row = session.scalars(
                        select(DestinationRow).where(DestinationRow.id == row_id).with_for_update()
                    ).first()
                    if row is None:
                        continue
                    stored: dict[str, str] = json.loads(row.credentials or "{}")
                    if not any(self.keyring.needs_rotation(blob) for blob in stored.values()):
                        continue
                    self._encrypt_into(row, self._decrypt_row(row))
                    done += 1
        return done

    def kids_in_use(self) -> set[str]:
        """Every kid some stored credential carries (an old key may be removed
        from ``OCS_TRANSFER_KEYS`` once its kid is not here)."""
        kids: set[str] = set()
        with self.ledger.session() as session:
            for text in session.scalars(select(DestinationRow.credentials)):
                for blob in json.loads(text or "{}").values():
                    kids.add(KeyRing.kid_of(blob) or "?")
        return kids

    # -- stores and connection tests -------------------------------------------------

    def open_store(self, ref: str | int) -> FileStore:
        with self.ledger.session() as session:
            row = self._row(session, ref)
            provider, options, creds = row.provider, json.loads(row.options or "{}"), self._decrypt_row(row)
            scope = row.scope
        return open_store(provider, options, creds, settings=self.settings, scope=scope)

    def link(
        self, ref: str | int, path: str, version_id: str | None = None, expiration: timedelta | None = None
    ) -> str:
        """A fresh download link for ``path`` (e.g. a completed transfer's
        ``remote_path`` and ``remote_version``) in destination ``ref``. Links
        signed with credentials (S3, GCS) are never stored: ask for one when a
        user needs it."""
        from ..storage.base import DEFAULT_LINK_EXPIRATION

        with self.open_store(ref) as store:
            return store.get_url(path, version_id or None, expiration or DEFAULT_LINK_EXPIRATION)

    def scope_for(self, snapshot: Mapping[str, Any]) -> str:
        """The scope a queued transfer's store is checked for: its snapshot's,
        or (snapshots from before scopes were kept) the destination's now, or
        ``personal`` (the strictest) when it was removed."""
        scope = snapshot.get("scope")
        if isinstance(scope, str) and scope:
            return scope
        found = self.find(snapshot["id"])
        if found is None or (snapshot.get("uuid") and found.uuid != snapshot["uuid"]):
            return "personal"
        return found.scope

    def test(self, ref: str | int) -> ConnectionTestResult:
        """Run the store's connection test and record the result and time."""
        from datetime import UTC, datetime

        started = self.clock()
        try:
            store = self.open_store(ref)
        except (ConfigurationError, CredentialError) as exc:
            result = ConnectionTestResult(
                ok=False, message=str(exc), checked_at=datetime.fromtimestamp(started, UTC), duration_s=0.0
            )
        else:
            with store:
                result = store.test_connection()
                self.save_rotated(ref, store)
            # providers redact at their boundary; a careless one must still not leak here
            secrets = list(self.credentials(ref).values())
            result = attrs.evolve(result, message=redact(result.message, secrets))
        with self.ledger.session() as session:
            row = self._row(session, ref, lock=True)
            row.last_test_ok = result.ok
            row.last_test_message = result.message
            row.last_test_at = result.checked_at.timestamp()
        return result

    # -- import ------------------------------------------------------------------------

    def import_storage_backend(
        self,
        record: Mapping[str, Any],
        *,
        name: str | None = None,
        scope: str = "organization",
        owner_id: str = "",
        extra_options: Mapping[str, Any] | None = None,
    ) -> Destination:
        """Create a destination from an old "storage backend" record.

        ``record`` has the old tags, with or without the ``storage_backend``
        prefix: ``storage_backend`` (name), ``storage_backend_id`` (identifier =
        provider), ``storage_backend_token``, ``storage_backend_config`` (JSON),
        ``storage_backend_keep_days``, ``storage_backend_desc``,
        ``storage_backend_active``. Config keys the provider lists as credential
        fields, and the token, become encrypted credentials; the other config
        keys become options (a key that is neither, and whose name looks
        secret, is refused rather than stored in the clear). For ``local`` the old
        token is the file server's ``host:port`` and becomes the ``server`` option.
        ``extra_options`` are added to the record's (e.g. a ``server_url`` it lacks).
        """

        def get(key: str) -> Any:
            for candidate in (f"storage_backend_{key}", key) if key else ("storage_backend", "name"):
                if candidate in record:
                    return record[candidate]
            return None

        provider = str(get("id") or get("identifier") or "").strip().lower()
        if not provider:
            raise ConfigurationError("the storage backend record has no storage_backend_id (its provider)")
        display = str(get("") or provider)
        config_raw = get("config") or {}
        if isinstance(config_raw, str):
            try:
                config_raw = json.loads(config_raw) if config_raw.strip() else {}
            except json.JSONDecodeError:
                raise ConfigurationError("storage_backend_config is not valid JSON") from None
        if not isinstance(config_raw, Mapping):
            raise ConfigurationError("storage_backend_config must be a JSON object")
        from .. import plugins

        provider_cls = plugins.get_provider(provider)
        secret_names = tuple(getattr(provider_cls, "credential_fields", ()))
        config_cls: Any = getattr(provider_cls, "Config", None)
        has_config = isinstance(config_cls, type) and attrs.has(config_cls)
        option_names = {f.name for f in attrs.fields(config_cls)} if has_config else set()
        options: dict[str, Any] = {}
        credentials: dict[str, str | Secret | None] = {}
        for key, value in config_raw.items():
            if key in secret_names:  # what the provider declares, not what a name looks like
                credentials[key] = value if isinstance(value, str) else json.dumps(value)
            elif key not in option_names and _looks_secret(key):
                # neither a credential nor an option of the provider: never stored in the clear
                raise ConfigurationError(
                    f"storage_backend_config key {key!r} is neither a credential nor an option of provider"
                    f" {provider!r} (its credentials: {', '.join(secret_names) or 'none'}); remove it from the"
                    " record, or rename it to the credential it is"
                )
            else:
                options[key] = value
        options.update(extra_options or {})  # given beside the record (e.g. a server_url it lacks)
        token = get("token")
        if token:
            if provider == "local":
                options.setdefault("server", str(token))
            else:
                credentials.setdefault("token", str(token))
        keep = get("keep_days")
        active = get("active")
        slug = name or re.sub(r"[^A-Za-z0-9_.@-]+", "-", display).strip("-") or provider
        return self.add(
            slug,
            provider,
            credentials=credentials,
            display_name=display,
            description=str(get("desc") or get("description") or ""),
            keep_days=int(keep) if keep not in (None, "") else None,  # the old records count whole days
            active=True if active is None else str(active).strip().lower() in ("1", "true", "yes", "on"),
            scope=scope,
            owner_id=owner_id,
            options=options,
        )
