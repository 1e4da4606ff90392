"""Fuzzing what users type about destinations (issue 19): store URLs, endpoint
and base URLs, provider options and the fields of ``dest add``, and the remote
path a destination's path, layout and a file's name and context make. Every
input is accepted or refused with one :class:`ConfigurationError` (or, for
missing credentials, :class:`CredentialError`), never another exception.
Nothing here builds a store that reaches a disk or a network: URLs and options
are judged by the providers' ``Config`` parsing, ``dest add`` writes only its
ledger, and only ``memory://`` stores are built."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ocs_transfer import plugins
from ocs_transfer.exceptions import ConfigurationError, CredentialError, FileSpecificationError, UnsafePathError
from ocs_transfer.settings import Settings
from ocs_transfer.storage import get_store
from ocs_transfer.storage.layouts import get_layout
from ocs_transfer.storage.paths import safe_path
from ocs_transfer.testing.fuzz import bounded, fuzz_settings
from ocs_transfer.transfer.core import remote_path_for
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations, check_destination, check_options
from ocs_transfer.transfer.guards import check_base_url, parse_endpoint
from ocs_transfer.transfer.ledger import Ledger

REFUSALS = (ConfigurationError, CredentialError)


def accepted_or_refused(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or ``None`` when it refused with a one-line
    configuration or credential error."""
    try:
        return bounded(call)
    except REFUSALS as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, type[Any]]]:
    """Every installed provider (the plugins' too)."""
    plugins.reset()
    yield {name: plugins.get_provider(name) for name in plugins.providers()}
    plugins.reset()


SCHEMES = ["memory", "s3", "gs", "gcs", "file", "local", "webdav", "webdav+https", "webdav+http", "https", "http",
           "dropbox", "gdrive", "seafile", "seafile+https", "scratch", "S3", "x-unknown"]
HOSTILE = ["[", "]", "[::1]", "[x", "%00", "%2e%2e", "..", "@", ":", ":99999", "\x00", "\n", " ", "#", "?", "\\",
           "user:pw@", "\u3002", "\uff0e", "0x7f.1", "\u2044"]
URL_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, parts: f"{scheme}://{''.join(parts)}", st.sampled_from(SCHEMES),
              st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=8)),
)


def _scheme_provider(url: str) -> type[Any] | None:
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    if match is None:
        return None
    try:
        return plugins.provider_for_scheme(match.group(1).lower())
    except ConfigurationError:
        return None


@fuzz_settings(400)
@given(URL_TEXT)
@example("memory://[x")  # urlsplit's "Invalid IPv6 URL" escaped as ValueError
@example("s3://[bucket/prefix")
@example("gs://b]x[/p")
@example("DROPBOX://[]")  # "'' does not appear to be an IPv4 or IPv6 address"
@example("file://[")
def test_any_store_url_gives_a_config_or_a_configuration_error(providers: Any, url: str) -> None:
    cls = _scheme_provider(url)
    if cls is not None:
        accepted_or_refused(lambda: cls.config_from_url(url))
    if url.lower().startswith("memory://"):
        store = accepted_or_refused(lambda: get_store(url))
        if store is not None:
            store.close()


@fuzz_settings(400)
@given(URL_TEXT)
@example("https://[x")
@example("https://h:99999")
def test_any_endpoint_text_gives_one_reading_or_a_configuration_error(url: str) -> None:
    parsed = accepted_or_refused(lambda: parse_endpoint(url, key="endpoint_url"))
    if parsed is not None:
        scheme, host, port = parsed
        assert scheme == scheme.lower() and scheme not in ("file", "local") and host
        assert port is None or 0 <= port < 65536
    base = accepted_or_refused(lambda: check_base_url("api_url", url))
    if base is not None:
        assert base.startswith(("https://", "http://")) and not base.endswith("/")


VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["https://[x", "http://h:99999", "https://h.example/p", "/etc", "../..", "%2e%2e", "", "true",
                     "none", "1e999", "nan", "-1", "http://0x7f.1/", "a\x00b", "s3://b", "file:///etc/passwd"]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def _option_names(cls: type[Any]) -> list[str]:
    config = getattr(cls, "Config", None)
    return [f.name for f in attrs.fields(config)] if config is not None and attrs.has(config) else []


@st.composite
def provider_options(draw: st.DrawFn, providers: dict[str, type[Any]]) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(providers)))
    names = _option_names(providers[name]) or ["root"]
    options = draw(st.dictionaries(st.one_of(st.sampled_from(names), st.text(max_size=8)), VALUES, max_size=5))
    return name, options


@fuzz_settings(400)
@given(st.data())
def test_any_provider_options_give_a_config_or_a_configuration_error(providers: Any, data: Any) -> None:
    """The two ways options come in: ``dest add`` (checked, then typed) and
    ``get_store(name, **options)`` / a worker building the store
    (``config_from_options``). Both accept or refuse the same clearly."""
    name, options = data.draw(provider_options(providers))
    cls = providers[name]
    scope = data.draw(st.sampled_from(["personal", "project", "organization", None]))
    accepted_or_refused(lambda: check_destination(cls, options, {}, scope=scope, settings=Settings()))
    typed = accepted_or_refused(lambda: check_options(cls, options))
    config = accepted_or_refused(lambda: cls.config_from_options(options))
    if typed is not None:  # what dest add accepted, a worker can build its Config from
        assert accepted_or_refused(lambda: cls.config_from_options(typed)) is not None
    if name == "memory" and config is not None:
        store = accepted_or_refused(lambda: cls.from_config(config, {}, settings=Settings()))
        if store is not None:
            store.close()


def test_a_local_root_with_a_nul_is_refused_at_dest_add(providers: Any) -> None:
    """Found by the long run (benchmarks/fuzz.py): realpath raised ValueError."""
    with pytest.raises(ConfigurationError, match="NUL character"):
        check_destination(providers["local"], {"root": "\x00"}, {}, scope="personal", settings=Settings())


def test_an_unknown_provider_name_with_a_newline_is_one_line() -> None:
    """Found by the long run: the message suggested ``pip install 'ocs-transfer-\n'``."""
    with pytest.raises(ConfigurationError) as info:
        plugins.get_provider("\n")
    assert "\n" not in str(info.value) and "pip install" not in str(info.value)


@pytest.mark.parametrize(
    ("provider", "options", "match"),
    [
        ("memory", {"root": True}, "root=True must be text"),  # was AttributeError: 'bool' has no 'strip'
        ("memory", {"root": {"a": "b"}}, "must be text"),
        ("memory", {"root": "run", "link_base_url": "https://[x"}, "link_base_url"),  # was ValueError (urlsplit)
        ("template-dir", {"root": "a\x00b"}, "NUL"),  # was ValueError: embedded null byte, at the first transfer
        ("seafile", {"server_url": ["https://h"], "repo_id": "r"}, "must be text"),
    ],
)
def test_options_found_by_fuzzing_are_refused_clearly(providers: Any, provider: str, options: dict[str, Any],
                                                      match: str) -> None:
    cls = providers[provider]
    for how in (lambda: check_options(cls, options), lambda: cls.config_from_options(options)):
        with pytest.raises(ConfigurationError, match=match):
            how()


@pytest.fixture(scope="module")
def destinations(tmp_path_factory: pytest.TempPathFactory, providers: Any) -> Iterator[Destinations]:
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'ledger.sqlite3'}")
    ledger.migrate()
    key = "k1:" + "A" * 43 + "="
    yield Destinations(ledger, KeyRing.parse(key, "k1"), settings=Settings())
    ledger.close()


FIELD_VALUES = {
    "path": st.one_of(st.text(max_size=30), st.sampled_from(["/", "//a//b", "../x", "a/%2e%2e/b", "a\x00", "C:\\x"])),
    "layout": st.one_of(st.text(max_size=30), st.sampled_from(["flat", "by_target", "{target}/{filename}", "{",
                                                              "{nope}", "{filename}/../x", "{filename:>999999}"])),
    "keep_hours": st.one_of(st.none(), st.integers(-5, 10**20), st.booleans(), st.text(max_size=4), st.floats()),
    "scope": st.one_of(st.sampled_from(["personal", "project", "organization"]), st.text(max_size=8)),
    "display_name": st.text(max_size=300),
    "delete_source": st.one_of(st.booleans(), st.text(max_size=3), st.none()),
}


@fuzz_settings(150)
@given(st.data())
def test_dest_add_accepts_or_refuses_clearly(providers: Any, destinations: Destinations, data: Any) -> None:
    """``dest add`` with any name, provider, options, credentials and fields."""
    provider, options = data.draw(provider_options(providers))
    provider = data.draw(st.one_of(st.just(provider), st.text(max_size=10)))
    name = data.draw(st.one_of(st.text(max_size=20), st.just(f"d-{uuid.uuid4().hex[:12]}")))
    fields = data.draw(st.fixed_dictionaries({}, optional=FIELD_VALUES))
    credentials = data.draw(st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=12), st.none()),
                                            max_size=3))
    added = accepted_or_refused(lambda: destinations.add(name, provider, options=options, credentials=credentials,
                                                         **fields))
    if added is not None:
        assert destinations.get(name).name == name
        destinations.remove(name)


@fuzz_settings(400)
@given(
    path=FIELD_VALUES["path"],
    layout=FIELD_VALUES["layout"],
    source=st.one_of(st.text(max_size=40), st.sampled_from(["a/../../x.fits", "x.fits/", "..", "%2e%2e.fits", ""])),
    context=st.dictionaries(st.sampled_from(["target", "project", "filename", "site", "x"]), st.text(max_size=20),
                            max_size=3),
)
def test_any_path_layout_name_and_context_give_a_safe_remote_path_or_an_error(
    path: str, layout: str, source: str, context: dict[str, str]
) -> None:
    """Where a file goes (the path a transfer is queued with): a safe
    relative path (:func:`safe_path` leaves it unchanged) or a clear error."""
    snapshot = {"name": "d", "path": path, "layout": layout}
    try:
        remote = bounded(lambda: remote_path_for(snapshot, source, context))
    except (ConfigurationError, FileSpecificationError, UnsafePathError) as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return
    assert remote and safe_path(remote) == remote
    assert get_layout(layout or "flat", context_fields=context) is not None
