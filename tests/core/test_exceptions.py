"""exceptions_compat: the four retry classes ingester services catch."""

from __future__ import annotations

import pickle

import pytest

import ocs_transfer
from ocs_transfer import exceptions as E
from ocs_transfer.redact import Secret, redact

ALL_ERRORS = [getattr(E, name) for name in E.__all__ if isinstance(getattr(E, name), type)]


def test_four_retry_classes_importable_by_documented_names() -> None:
    for name in ("RetryError", "BackoffRetryError", "DoNotRetryError", "NonFatalDoNotRetryError"):
        assert getattr(ocs_transfer, name) is getattr(E, name)
        assert issubclass(getattr(E, name), E.OcsTransferError)



RETRY_CLASSES = (E.RetryError, E.BackoffRetryError, E.DoNotRetryError, E.NonFatalDoNotRetryError)


def test_the_four_retry_classes_are_unrelated() -> None:
    """As in the OCS ingester's exception module: catching one never catches
    another, whatever the order of the except clauses."""
    for cls in RETRY_CLASSES:
        assert cls.__bases__ == (E.OcsTransferError,)
        for other in RETRY_CLASSES:
            assert cls is other or not issubclass(cls, other), (cls, other)


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


def test_every_error_is_at_most_one_retry_class() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.walk_packages(ocs_transfer.__path__, "ocs_transfer."):
        if mod.name.startswith(("ocs_transfer.testing", "ocs_transfer.transfer.migrations")):
            continue  # the migrations' env.py runs only inside alembic
        importlib.import_module(mod.name)
    for cls in _all_subclasses(E.OcsTransferError):
        kinds = [k.__name__ for k in RETRY_CLASSES if issubclass(cls, k)]
        assert len(kinds) <= 1, f"{cls.__module__}.{cls.__qualname__} is {kinds}"


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_attributes(cls: type[E.OcsTransferError]) -> None:
    exc = E.BackoffRetryError("slow down", retry_after=7.5) if cls is E.BackoffRetryError else cls("what went wrong")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.__dict__ == exc.__dict__


def test_rate_limit_keeps_retry_after_through_pickle() -> None:
    back = pickle.loads(pickle.dumps(E.RateLimitError("429", retry_after=12.0)))
    assert isinstance(back, E.BackoffRetryError) and back.retry_after == 12.0


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (E.ConfigurationError, ValueError),
        (E.ProviderNotFoundError, LookupError),
        (E.FileSpecificationError, ValueError),
        (E.PermissionDeniedError, PermissionError),
        (E.ObjectNotFoundError, FileNotFoundError),
        (E.UnsafePathError, ValueError),
    ],
)
def test_specific_errors_also_are_their_builtin(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, builtin)
    assert issubclass(cls, E.OcsTransferError)


@pytest.mark.parametrize(
    ("cls", "intent"),
    [
        (E.ConfigurationError, E.DoNotRetryError),
        (E.CredentialError, E.DoNotRetryError),
        (E.QuotaExceededError, E.DoNotRetryError),
        (E.FileSpecificationError, E.DoNotRetryError),
        (E.IntegrityError, E.RetryError),
        (E.TransientStorageError, E.RetryError),
        (E.RateLimitError, E.BackoffRetryError),
        (E.AlreadyStoredError, E.NonFatalDoNotRetryError),
    ],
)
def test_specific_errors_carry_their_retry_intent(cls: type[Exception], intent: type[Exception]) -> None:
    assert issubclass(cls, intent)


def test_secret_never_shows_itself() -> None:
    secret = Secret("sl.u.AAAAtopsecretTOKEN")
    percent = "%s" % (secret,)  # noqa: UP031 - the old formatting style must hide it too
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", percent, repr([secret]), repr({"t": secret})]
    for text in shown:
        assert "topsecret" not in text
    assert secret.reveal() == "sl.u.AAAAtopsecretTOKEN"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_redact_removes_secret_and_its_base64() -> None:
    import base64

    token = "sl.u.AAAAtopsecretTOKEN"
    b64 = base64.b64encode(token.encode()).decode()
    text = f"401 for token {token}; header Basic {b64}"
    cleaned = redact(text, [Secret(token)])
    assert token not in cleaned and b64 not in cleaned and b64.rstrip("=") not in cleaned
    assert "401 for token" in cleaned
