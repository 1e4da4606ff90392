"""Settings: one frozen value, built at the edge.

Nothing in ocs_transfer reads the environment at import time or binds a setting
into a default argument. Applications build a :class:`Settings` once, with
``Settings.from_env()`` or ``Settings(...)``, and pass it down; library
functions that accept ``settings=None`` call ``Settings.from_env()`` only then.

Every variable ocs_archive users set keeps its name and meaning. Variables are
documented in the README ("Configuration"); :data:`ENV_VARIABLES` lists them with
their defaults, and a test keeps the two in step.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .exceptions import ConfigurationError

__all__ = ["ENV_VARIABLES", "Settings", "get_tuple_from_environment", "parse_mapping", "parse_tuple"]


def parse_tuple(value: str) -> tuple[str, ...]:
    """A comma-separated list, as ocs_archive reads it (spaces removed, empty
    items dropped)."""
    return tuple(item for item in value.replace(" ", "").split(",") if item)


def get_tuple_from_environment(variable_name: str, default: str) -> tuple[str, ...]:
    """ocs_archive 0.5's helper, for settings modules that import it: the
    variable (or ``default``) with spaces removed, outer commas stripped, split
    on commas. Unlike :func:`parse_tuple` it keeps empty items (``"a,,b"``
    gives ``("a", "", "b")``) and an empty value gives ``("",)``, exactly as
    ocs_archive did."""
    return tuple(os.getenv(variable_name, default).strip(",").replace(" ", "").split(","))


def parse_mapping(value: str) -> dict[str, str]:
    """A JSON object, or a Python dict literal (parsed without eval)."""
    text = value.strip()
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError("neither JSON nor a Python dict literal") from exc
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise ValueError("must map strings to strings")
    return dict(parsed)


def _parse_int(value: str) -> int:
    return int(value.strip())


def _parse_bool(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("not a boolean")


def _parse_executor(value: str) -> str:
    text = value.strip().lower()
    if text not in ("worker", "celery"):
        raise ValueError("not an executor")
    return text


def _parse_paths(value: str) -> tuple[str, ...]:
    """Comma-separated paths (spaces inside a path kept)."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _parse_int_tuple(value: str) -> tuple[int, ...]:
    return tuple(int(item) for item in parse_tuple(value))


_EXPECTED: dict[Callable[[str], Any], str] = {
    _parse_int_tuple: "a comma-separated list of whole numbers",
    parse_tuple: "a comma-separated list",
    _parse_paths: "a comma-separated list of folders",
    parse_mapping: 'a JSON object or Python dict literal of strings, e.g. {".fits": "my.module.MyFile"}',
    _parse_int: "a whole number",
    _parse_bool: "true or false",
    _parse_executor: '"worker" (the thread-pool worker) or "celery"',
    str: "a string",
}


def _env(name: str, default: Any, parse: Callable[[str], Any] = str, aliases: tuple[str, ...] = ()) -> Any:
    """Declare a field read from environment variable ``name`` (or, when it is
    unset, the first of ``aliases`` that is set)."""
    metadata = {"env": name, "parse": parse, "aliases": aliases}
    if isinstance(default, dict):
        return attrs.field(factory=lambda: dict(default), metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


_T = parse_tuple


@attrs.frozen(kw_only=True)
class Settings:
    """All of ocs_transfer's configuration. Build with keyword arguments or
    :meth:`from_env`; derive variants with :meth:`evolve`."""

    # -- data files ----------------------------------------------------------------
    filetype_mapping_overrides: dict[str, str] = _env("FILETYPE_MAPPING_OVERRIDES", {}, parse_mapping)
    thumbnail_filetypes: tuple[str, ...] = _env("THUMBNAIL_FILE_TYPE_EXTENSIONS", (".jpg", ".jpeg"), _T)
    ignored_chars: tuple[str, ...] = _env("IGNORED_CHARS", ("-l00", "tstnrs"), _T)
    header_blacklist: tuple[str, ...] = _env("HEADER_BLACKLIST", ("HISTORY", "COMMENT"), _T)
    required_headers: tuple[str, ...] = _env(
        "REQUIRED_HEADERS", ("PROPID", "DATE-OBS", "DAY-OBS", "INSTRUME", "SITEID", "TELID", "OBSTYPE", "BLKUID"), _T
    )
    required_thumbnail_metadata: tuple[str, ...] = _env(
        "REQUIRED_THUMBNAIL_METADATA",
        ("frame_basename", "size", "DATE-OBS", "DAY-OBS", "INSTRUME", "SITEID", "TELID"),
        _T,
    )
    null_header_values: tuple[str, ...] = _env("NULL_HEADER_VALUES", ("N/A", "UNSPECIFIED", "UNKNOWN"), _T)
    calibration_types: tuple[str, ...] = _env("CALIBRATION_TYPES", ("BIAS", "DARK", "SKYFLAT", "EXPERIMENTAL"), _T)
    public_proposals: tuple[str, ...] = _env("PUBLIC_PROPOSALS", ("EPO", "calib", "standard", "pointing"), _T)
    private_proposals: tuple[str, ...] = _env("PRIVATE_PROPOSALS", ("LCOEngineering",), _T)
    private_proposal_tags: tuple[str, ...] = _env("PRIVATE_PROPOSAL_TAGS", ("private", "internal"), _T)
    public_proposal_tags: tuple[str, ...] = _env("PUBLIC_PROPOSAL_TAGS", ("public",), _T)
    days_until_public: int = _env("DAYS_UNTIL_PUBLIC", 365, _parse_int)
    private_file_types: tuple[str, ...] = _env("PRIVATE_FILE_TYPES", ("-t00", "-x00"), _T)
    observation_portal_base_url: str | None = _env("OBSERVATION_PORTAL_BASE_URL", None)
    #: Seconds to wait for the Observation Portal's proposal tags (ocs_transfer's own).
    observation_portal_timeout: int = _env("OBSERVATION_PORTAL_TIMEOUT", 10, _parse_int)
    #: Secret; never shown in reprs.
    observation_portal_api_token: str | None = attrs.field(
        default=None, repr=False, metadata={"env": "OBSERVATION_PORTAL_API_TOKEN", "parse": str, "secret": True}
    )

    # -- header keys -----------------------------------------------------------------
    observation_date_key: str = _env("OBSERVATION_DATE_KEY", "DATE-OBS")
    observation_day_key: str = _env("OBSERVATION_DAY_KEY", "DAY-OBS")
    observation_end_time_key: str = _env("OBSERVATION_END_TIME_KEY", "UTSTOP")
    reduction_level_key: str = _env("REDUCTION_LEVEL_KEY", "RLEVEL")
    exposure_time_key: str = _env("EXPOSURE_TIME_KEY", "EXPTIME")
    instrument_id_key: str = _env("INSTRUMENT_ID_KEY", "INSTRUME")
    site_id_key: str = _env("SITE_ID_KEY", "SITEID")
    telescope_id_key: str = _env("TELESCOPE_ID_KEY", "TELID")
    observation_id_key: str = _env("OBSERVATION_ID_KEY", "BLKUID")
    configuration_id_key: str = _env("CONFIGURATION_ID_KEY", "MOLUID")
    primary_optical_element_key: str = _env("PRIMARY_OPTICAL_ELEMENT_KEY", "FILTER")
    target_name_key: str = _env("TARGET_NAME_KEY", "OBJECT")
    request_id_key: str = _env("REQUEST_ID_KEY", "REQNUM")
    requestgroup_id_key: str = _env("REQUESTGROUP_ID_KEY", "TRACKNUM")
    configuration_type_key: str = _env("CONFIGURATION_TYPE_KEY", "OBSTYPE")
    proposal_id_key: str = _env("PROPOSAL_ID_KEY", "PROPID")
    catalog_target_frame_key: str = _env("CATALOG_TARGET_FRAME_KEY", "L1IDCAT")
    public_date_key: str = _env("PUBLIC_DATE_KEY", "L1PUBDAT")
    related_frame_keys: tuple[str, ...] = _env(
        "RELATED_FRAME_KEYS",
        (
            "L1IDBIAS", "L1IDDARK", "L1IDFLAT", "L1IDSHUT", "L1IDMASK", "L1IDFRNG", "L1IDCAT", "L1IDARC",
            "L1ID1D", "L1ID2D", "L1IDSUM", "TARFILE", "ORIGNAME", "ARCFILE", "FLATFILE", "GUIDETAR",
        ),
        _T,
    )  # fmt: skip
    radius_key: str = _env("RADIUS_KEY", "RADIUS")
    ra_key: str = _env("RA_KEY", "RA")
    dec_key: str = _env("DEC_KEY", "DEC")
    #: ``THUMBNAIL_FRAME_BASENAME_KEY`` as in ocs_archive; ``THUMBNAIL_FRAME_FILENAME_KEY`` is read when it is unset.
    thumbnail_frame_basename_key: str = _env(
        "THUMBNAIL_FRAME_BASENAME_KEY", "frame_basename", aliases=("THUMBNAIL_FRAME_FILENAME_KEY",)
    )
    thumbnail_size_key: str = _env("THUMBNAIL_SIZE_KEY", "size")

    # -- file store ------------------------------------------------------------------
    filestore_type: str = _env("FILESTORE_TYPE", "local")
    filesystem_storage_root_dir: str = _env("FILESYSTEM_STORAGE_ROOT_DIR", "")
    filesystem_storage_base_url: str = _env("FILESYSTEM_STORAGE_BASE_URL", "http://0.0.0.0/")
    bucket: str = _env("BUCKET", "testbucket")
    s3_endpoint_url: str | None = _env("S3_ENDPOINT_URL", None)
    s3_signature_version: str = _env("S3_SIGNATURE_VERSION", "s3v4")
    s3_days_to_ia_storage: int = _env("S3_DAYS_TO_IA_STORAGE", 60, _parse_int)
    s3_addressing_style: str = _env("S3_ADDRESSING_STYLE", "virtual")
    aws_default_region: str = _env("AWS_DEFAULT_REGION", "")
    #: A GCS emulator's host:port (the variable Google's own clients read); gs:// URLs on the CLI use it.
    storage_emulator_host: str | None = _env("STORAGE_EMULATOR_HOST", None)

    # -- transfers (ocs_transfer's own) ------------------------------------------------
    ledger_url: str = _env("OCS_TRANSFER_LEDGER_URL", "sqlite:///ocs_transfer.sqlite3")
    chunk_size: int = _env("OCS_TRANSFER_CHUNK_SIZE", 8 * 1024 * 1024, _parse_int)
    connect_timeout: int = _env("OCS_TRANSFER_CONNECT_TIMEOUT", 10, _parse_int)
    read_timeout: int = _env("OCS_TRANSFER_READ_TIMEOUT", 60, _parse_int)
    #: Secret: the credential key ring, ``kid:base64key,...`` (each key 32 bytes). No default.
    transfer_keys: str | None = attrs.field(
        default=None, repr=False, metadata={"env": "OCS_TRANSFER_KEYS", "parse": str, "secret": True}
    )
    transfer_active_key: str | None = _env("OCS_TRANSFER_ACTIVE_KEY", None)
    #: Seconds to wait before the 2nd, 3rd, 4th attempt; the attempt after the last delay is final.
    retry_delays: tuple[int, ...] = _env("OCS_TRANSFER_RETRY_DELAYS", (300, 600, 1200), _parse_int_tuple)
    purge_after_days: int = _env("OCS_TRANSFER_PURGE_AFTER_DAYS", 90, _parse_int)
    periodic_interval: int = _env("OCS_TRANSFER_PERIODIC_INTERVAL", 600, _parse_int)
    heartbeat_interval: int = _env("OCS_TRANSFER_HEARTBEAT_INTERVAL", 15, _parse_int)
    stale_after: int = _env("OCS_TRANSFER_STALE_AFTER", 120, _parse_int)
    worker_threads: int = _env("OCS_TRANSFER_WORKER_THREADS", 4, _parse_int)
    #: What runs transfers: ``worker`` (``ocs-transfer worker`` polls the ledger) or ``celery``
    #: (``schedule`` and ``retry`` publish tasks to the broker; ``ocs-transfer worker --celery`` runs them).
    executor: str = _env("OCS_TRANSFER_EXECUTOR", "worker", _parse_executor)
    #: Secret (it may hold a password): the Celery broker, RabbitMQ (``amqp://``) or Redis (``redis://``).
    broker_url: str = attrs.field(
        default="amqp://guest:guest@127.0.0.1:5672//", repr=False,
        metadata={"env": "OCS_TRANSFER_BROKER_URL", "parse": str, "secret": True},
    )
    #: The broker queue the Celery executor's tasks go to (one per deployment sharing a broker).
    celery_queue: str = _env("OCS_TRANSFER_CELERY_QUEUE", "ocs_transfer")
    #: Hosts (or host:port) a destination's endpoint options may name; empty allows any.
    endpoint_allowlist: tuple[str, ...] = _env("OCS_TRANSFER_ENDPOINT_ALLOWLIST", (), _T)
    #: Let personal / project destinations without credentials run as the service's own identity.
    allow_ambient_credentials: bool = _env("OCS_TRANSFER_ALLOW_AMBIENT_CREDENTIALS", False, _parse_bool)
    #: Folders personal / project ``local`` destinations must lie under; empty: anywhere but system folders.
    local_roots: tuple[str, ...] = _env("OCS_TRANSFER_LOCAL_ROOTS", (), _parse_paths)
    #: Where the webhook notifier POSTs finished transfers (link, size, checksums, expiry); unset: no webhook.
    webhook_url: str | None = _env("OCS_TRANSFER_WEBHOOK_URL", None)
    #: Secret: the webhook's shared HMAC-SHA256 key (its receiver checks the signature header with it).
    webhook_secret: str | None = attrs.field(
        default=None, repr=False, metadata={"env": "OCS_TRANSFER_WEBHOOK_SECRET", "parse": str, "secret": True}
    )
    #: Seconds one webhook request may take; and how many tries it gets (retryable failures only).
    webhook_timeout: int = _env("OCS_TRANSFER_WEBHOOK_TIMEOUT", 10, _parse_int)
    webhook_attempts: int = _env("OCS_TRANSFER_WEBHOOK_ATTEMPTS", 4, _parse_int)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (``os.environ`` when ``None``).

        Unset variables take their defaults; ``overrides`` win over both. A
        malformed value raises :class:`ConfigurationError` naming the variable
        and what was expected.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            name = field.metadata.get("env")
            if name is None:
                continue
            name = next((n for n in (name, *field.metadata.get("aliases", ())) if n in env), None)
            if name is None:
                continue
            parse = field.metadata["parse"]
            raw = env[name]
            try:
                values[field.name] = parse(raw)
            except (ValueError, TypeError) as exc:
                shown = "(hidden)" if field.metadata.get("secret") else repr(raw[:80])
                raise ConfigurationError(
                    f"environment variable {name}={shown} is malformed: expected {_EXPECTED.get(parse, 'a value')}"
                    f" ({exc})"
                ) from None
        values.update(overrides)
        return cls(**values)

    def evolve(self, **changes: Any) -> Settings:
        return attrs.evolve(self, **changes)


#: ``{variable name: (field name, default)}`` for every variable Settings reads.
ENV_VARIABLES: dict[str, tuple[str, Any]] = {
    f.metadata["env"]: (f.name, f.default.factory() if isinstance(f.default, attrs.Factory) else f.default)  # type: ignore[arg-type,union-attr]
    for f in attrs.fields(Settings)
    if "env" in f.metadata
}


#: ocs_archive 0.5's ``INTEGER_TYPES``, by the settings that name those keys.
_INTEGER_TYPE_FIELDS = ("request_id_key", "requestgroup_id_key", "observation_id_key", "configuration_id_key")


def __getattr__(name: str) -> Any:
    """``ocs_transfer.settings.REQUIRED_HEADERS`` and the other upper-case names
    of ``ocs_archive.settings.settings``, for code that reads them as module
    constants (``from ocs_transfer import settings``). Each read builds
    :meth:`Settings.from_env` anew; new code passes a :class:`Settings`."""
    if name == "INTEGER_TYPES":
        current = Settings.from_env()
        return [getattr(current, f) for f in _INTEGER_TYPE_FIELDS]
    if name in ENV_VARIABLES:
        return getattr(Settings.from_env(), ENV_VARIABLES[name][0])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
