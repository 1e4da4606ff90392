"""The error tree of ocs_transfer.

Every error the library raises derives from :class:`OcsTransferError`. What a
caller should *do* about an error is part of its type, through the four retry
classes that ingester services already catch:

``RetryError``
    A transient failure (a dropped connection, a 503). Retrying soon is safe.
``BackoffRetryError``
    The other side asked us to slow down (429, rate limits) or is overloaded.
    Retry, but only after waiting (``retry_after`` seconds when known).
``DoNotRetryError``
    Retrying cannot help (bad input, bad configuration, permission denied,
    quota exhausted). Fail for good and tell a person.
``NonFatalDoNotRetryError``
    Nothing to retry because nothing went wrong: e.g. the identical file is
    already stored. Callers usually log it and move on.

The four classes are unrelated to each other (each derives only from
``OcsTransferError``), as in the OCS ingester's own exception module, and every
specific error below is exactly one of them. So the order of ``except`` clauses
does not matter: ``except DoNotRetryError`` does not catch a
``NonFatalDoNotRetryError``, and ``except RetryError`` does not catch a
``BackoffRetryError`` (catch both, ``except (RetryError, BackoffRetryError)``,
to mean "retryable"; or ask :func:`ocs_transfer.retry.classify`).

Each class also states its intent in ``retry_intent`` (``"retry"``,
``"backoff"``, ``"never"``, ``"done"``, or ``"cause"``: decided by the error it
was raised ``from``, final when there is none), which
:func:`ocs_transfer.retry.classify` reads. Provider code raises the class
whose intent fits: :class:`TransientStorageError` (retry),
:class:`RateLimitError` (back off), :class:`FinalStorageError` (never),
:class:`StorageError` (``raise StorageError(...) from exc``: as its cause says).

Specific errors subclass the right one of these, and also a builtin where one
fits (``ConfigurationError`` is a ``ValueError``), so both styles of ``except``
work. Every error is picklable (it crosses process boundaries in task queues):
constructor arguments are kept in ``args`` and extra attributes are keyword
arguments with defaults.

Error messages never contain secrets. Code that builds a message from provider
output must pass it through :func:`ocs_transfer.redact.redact` first.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

#: What :func:`ocs_transfer.retry.classify` does with an error class.
RetryIntent = Literal["retry", "backoff", "never", "done", "cause"]

__all__ = [
    "AlreadyStoredError",
    "BackoffRetryError",
    "ConfigurationError",
    "CredentialError",
    "DataFileError",
    "DoNotRetryError",
    "FileSpecificationError",
    "FileSpecificationException",
    "FileStoreConnectionError",
    "FileStoreSpecificationError",
    "FinalStorageError",
    "IntegrityError",
    "NonFatalDoNotRetryError",
    "ObjectNotFoundError",
    "OcsTransferError",
    "PermissionDeniedError",
    "PluginError",
    "ProviderNotFoundError",
    "QuotaExceededError",
    "RateLimitError",
    "RetryError",
    "RetryIntent",
    "StorageError",
    "TransferCancelledError",
    "TransientStorageError",
    "UnsafePathError",
]


class OcsTransferError(Exception):
    """Root of every error raised by ocs_transfer."""

    #: How :func:`ocs_transfer.retry.classify` treats this class (see the module doc).
    retry_intent: ClassVar[RetryIntent] = "cause"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A class that does not say its intent gets the one of its retry
        # class (a QuotaExceededError is a StorageError and a DoNotRetryError:
        # never), so the attribute always agrees with ``isinstance``.
        super().__init_subclass__(**kwargs)
        if "retry_intent" in cls.__dict__:
            return
        for name, intent in (
            ("NonFatalDoNotRetryError", "done"),
            ("DoNotRetryError", "never"),
            ("BackoffRetryError", "backoff"),
            ("RetryError", "retry"),
        ):
            base = globals().get(name)
            if base is not None and issubclass(cls, base):
                cls.retry_intent = intent  # type: ignore[assignment]
                return

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword attributes across pickling (Exception's default
        # __reduce__ only replays ``args``).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class RetryError(OcsTransferError):
    """A transient failure: retrying soon is safe."""

    retry_intent: ClassVar[RetryIntent] = "retry"


class BackoffRetryError(OcsTransferError):
    """Retry only after waiting; ``retry_after`` is the wait in seconds when the
    other side said (e.g. a ``Retry-After`` header), otherwise ``None``."""

    retry_intent: ClassVar[RetryIntent] = "backoff"

    def __init__(self, *args: Any, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class DoNotRetryError(OcsTransferError):
    """Retrying cannot help; fail for good with this reason."""

    retry_intent: ClassVar[RetryIntent] = "never"


class NonFatalDoNotRetryError(OcsTransferError):
    """Nothing to retry and nothing wrong (e.g. already stored). Not a
    ``DoNotRetryError``: catch it on its own."""

    retry_intent: ClassVar[RetryIntent] = "done"


# -- configuration and plugins ------------------------------------------------


class ConfigurationError(DoNotRetryError, ValueError):
    """A setting, option or argument is missing or malformed."""


class ProviderNotFoundError(ConfigurationError, LookupError):
    """No installed plugin provides the storage provider asked for."""


class PluginError(ConfigurationError):
    """A plugin registered something invalid (a duplicate name, a wrong type)."""


class CredentialError(DoNotRetryError):
    """Credentials are missing, malformed, undecryptable, or were refused
    (re-authorise; retrying will not help)."""


# -- data files ------------------------------------------------------------------


class FileSpecificationError(DoNotRetryError, ValueError):
    """A data file is malformed, truncated, unsupported or lacks required
    headers. The file itself must change before it can be processed.

    The message is one line: control characters in it (a file name with a
    newline, say) are shown escaped, as ``repr`` would show them."""

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            text = "".join(repr(c)[1:-1] if ord(c) < 32 or ord(c) == 127 else c for c in text)
        super().__init__(text, *args)


#: Alias used by STYLE.md.
DataFileError = FileSpecificationError
#: ocs_archive 0.5's name (``ocs_archive.input.file.FileSpecificationException``).
FileSpecificationException = FileSpecificationError


# -- storage -----------------------------------------------------------------------


class StorageError(OcsTransferError):
    """A storage provider failed. Retried or not as the error it was raised
    ``from`` says (``raise StorageError("upload failed") from exc``); without
    a cause, final. Raise a subclass to say the intent outright."""

    retry_intent: ClassVar[RetryIntent] = "cause"


class FinalStorageError(StorageError, DoNotRetryError):
    """A storage provider failed and retrying will not help, whatever the
    cause (a refused name, an unsupported operation)."""


class TransientStorageError(StorageError, RetryError):
    """A storage provider failed transiently (connection, timeout, 5xx)."""


class RateLimitError(StorageError, BackoffRetryError):
    """A storage provider asked us to slow down (a ``BackoffRetryError``, not a
    ``TransientStorageError``: retry only after waiting)."""


class QuotaExceededError(StorageError, DoNotRetryError):
    """The destination is full or over its quota."""


class PermissionDeniedError(StorageError, DoNotRetryError, PermissionError):
    """The credentials are valid but may not do this."""


class ObjectNotFoundError(StorageError, DoNotRetryError, FileNotFoundError):
    """The object, bucket, library or folder does not exist."""


class IntegrityError(StorageError, RetryError):
    """What the destination holds does not match what was read from the
    source (size or checksum). The bad object has been removed; a retry
    uploads again."""


class AlreadyStoredError(StorageError, NonFatalDoNotRetryError):
    """The identical content is already stored at this path."""


class FileStoreConnectionError(TransientStorageError):
    """ocs_archive 0.5's name for a file-store failure that may pass on a retry
    (a dropped connection, a timeout, a 5xx, a rate limit). Raised by the
    ocs_archive-shaped stores of :mod:`ocs_transfer.storage.compat`, with the
    precise error as its ``__cause__``."""


class FileStoreSpecificationError(ConfigurationError):
    """ocs_archive 0.5's name for a file store that cannot work as configured
    (unknown ``FILESTORE_TYPE``, missing bucket or root, refused credentials).
    Retrying will not help."""


class UnsafePathError(DoNotRetryError, ValueError):
    """A path component would escape its root or is not a legal name."""


class TransferCancelledError(DoNotRetryError):
    """The transfer was cancelled while running; nothing partial was left."""
