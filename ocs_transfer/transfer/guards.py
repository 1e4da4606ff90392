"""What a destination may reach: endpoints, identities and local roots.

A destination made by a user runs inside the service, so everything it names
is a request the service makes on the user's behalf. Three checks keep it to
what operators allow (RELIABILITY.md, promise 11):

- :func:`check_endpoints`: every option naming a server (the provider's
  ``endpoint_options``) must be a plain ``scheme://host[:port]/path`` URL that
  every parser reads the same way, and, when ``OCS_TRANSFER_ENDPOINT_ALLOWLIST``
  is set, name an allowed host.
- :func:`check_ambient_credentials`: a user-made (``personal`` or ``project``)
  destination must bring its own credentials; the service's ambient identity
  (AWS keys in the environment, a profile, an instance role, Google
  Application Default Credentials, a key file on the server) is refused
  unless ``OCS_TRANSFER_ALLOW_AMBIENT_CREDENTIALS`` is on.
- :func:`check_local_roots`: a user-made destination's local paths must lie
  under ``OCS_TRANSFER_LOCAL_ROOTS``; with none configured, system
  directories are refused.
- :func:`check_local_folders` (every scope): a local path that exists must be
  a folder, so a file given as a store's root is refused when entered, not
  at the first transfer.

Each runs when a destination is added or edited, and again when a worker
builds the store.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError
from ..settings import Settings
from ..storage.base import FileStore

__all__ = [
    "ENDPOINT_OPTIONS",
    "SYSTEM_DIRECTORIES",
    "USER_SCOPES",
    "check_ambient_credentials",
    "check_base_url",
    "check_endpoints",
    "check_local_folders",
    "check_local_roots",
    "parse_endpoint",
]

#: Provider options that name a server the service connects to (the default of
#: :attr:`ocs_transfer.storage.base.FileStore.endpoint_options`).
ENDPOINT_OPTIONS = FileStore.endpoint_options
#: Scopes whose destinations users make (an organization's are made by its operators).
USER_SCOPES = ("personal", "project")
#: Refused for user-made local destinations when ``OCS_TRANSFER_LOCAL_ROOTS`` is unset.
SYSTEM_DIRECTORIES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc", "/root", "/run",
    "/sbin", "/sys", "/usr", "/var",
)  # fmt: skip

#: The only authority we accept: a DNS name, a dotted IPv4 or a bracketed IPv6, and a port.
_AUTHORITY = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?$"
)
#: Hosts made only of digits, dots and hex: numbers some resolvers read as addresses.
_NUMERIC = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)
#: Schemes that read this machine's files, not a server: never an endpoint.
_LOCAL_SCHEMES = ("file", "local", "unix", "jar", "data")
#: Hosts a provider's base URL may reach over plain ``http://`` (test servers, local proxies).
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_base_url(key: str, value: str, *, full_url: bool = False) -> str:
    """A provider option that replaces one of its API's base URLs (for a proxy
    or a test server): ``https://host[:port]``, plain ``http://`` only for a
    loopback host, no path (unless ``full_url``), query, fragment or user info.
    Returns it without a trailing slash. (The allow-list is checked separately,
    for the provider's ``endpoint_options``.)"""
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed or empty [host]
        parts = urlsplit("")
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"option {key}={value!r} must be an https:// URL with a host, e.g. https://host")
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise ConfigurationError(f"option {key}={value!r}: plain http:// is accepted only for loopback hosts; use https://")
    if not full_url and parts.path.strip("/"):
        raise ConfigurationError(f"option {key}={value!r} must be a scheme and host only, with no path")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(f"option {key}={value!r} must not carry a query, fragment or user name")
    return value.rstrip("/")


def _refuse(key: str, text: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"option {key}={text[:200]!r} is not a usable endpoint: {why}; give a plain URL such as"
        " https://host.example.org:443/path"
    )


def parse_endpoint(text: str, *, key: str = "endpoint") -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of an endpoint URL (or ``host[:port]``; the
    scheme must name a network protocol; providers check which ones they speak), host
    lower-cased without a trailing dot. Refuses anything two URL parsers could
    read differently: user info (``@``), backslashes, whitespace and control
    characters, percent-encoding or other odd characters in the authority,
    fragments, numeric hosts in any form but canonical dotted IPv4 (decimal,
    octal, hex, short forms), IPv4-mapped IPv6, and ports out of range. The
    host is then checked against what urllib3 (which botocore connects with)
    and the standard library make of the same text."""
    if not isinstance(text, str) or not text:
        raise _refuse(key, str(text), "it is empty or not text")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text) or "\\" in text:
        raise _refuse(key, text, "it contains whitespace, control characters or a backslash")
    if not text.isascii():
        raise _refuse(key, text, "it contains non-ASCII characters (write an IDN host in its xn-- form)")
    url = text if "://" in text else f"http://{text}"
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or scheme in _LOCAL_SCHEMES:
        raise _refuse(key, text, f"the scheme {scheme!r} names no network server (use http:// or https://)")
    if "#" in rest:
        raise _refuse(key, text, "it contains '#' (a fragment)")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise _refuse(key, text, "it contains user info ('@'); give credentials as credentials, not in the URL")
    match = _AUTHORITY.match(authority)
    if match is None:
        raise _refuse(key, text, f"the host part {authority!r} is not a plain host[:port]")
    host = match.group("host").lower()
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise _refuse(key, text, f"port {port} is out of range")
    if host.startswith("["):
        try:
            address6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _refuse(key, text, f"{host} is not an IPv6 address") from None
        if address6.ipv4_mapped is not None or address6.sixtofour is not None or address6.teredo is not None:
            raise _refuse(key, text, f"{host} embeds an IPv4 address; write that address instead")
        host = f"[{address6.compressed}]"
    elif _NUMERIC.match(host):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = ""
        if canonical != host:
            raise _refuse(key, text, f"{host!r} is a number resolvers may read as an address; write it as a.b.c.d")
    host = host.rstrip(".")
    _agree(key, text, url, host, port)
    return scheme, host, port


def _agree(key: str, text: str, url: str, host: str, port: int | None) -> None:
    """The same host and port as urllib3's and the standard library's parsers."""
    seen: list[tuple[str, int | None]] = []
    try:
        split = urlsplit(url)
    except ValueError:
        raise _refuse(key, text, "the standard library cannot parse it") from None
    try:
        seen.append(((split.hostname or "").rstrip("."), split.port))
    except ValueError:
        raise _refuse(key, text, "its port is not a number") from None
    try:
        from urllib3.util import parse_url
    except ImportError:  # pragma: no cover - urllib3 comes with every HTTP client we use
        pass
    else:
        try:
            parsed = parse_url(url)
        except ValueError:
            raise _refuse(key, text, "urllib3 cannot parse it") from None
        if parsed.auth:
            raise _refuse(key, text, "it contains user info")
        seen.append(((parsed.host or "").lower().rstrip("."), parsed.port))
    ours = host[1:-1] if host.startswith("[") else host
    for other_host, other_port in seen:
        other = other_host.strip("[]")
        if host.startswith("["):
            try:
                other = ipaddress.IPv6Address(other).compressed
            except ValueError:
                pass
        if other != ours or other_port != port:
            raise _refuse(key, text, "URL parsers disagree on its host")


def check_endpoints(
    options: Mapping[str, Any], settings: Settings | None, names: Iterable[str] = ENDPOINT_OPTIONS
) -> None:
    """Check every option in ``names`` (a provider's ``endpoint_options``):
    a well-formed endpoint (:func:`parse_endpoint`) and, when
    ``OCS_TRANSFER_ENDPOINT_ALLOWLIST`` is set, an allowed host (``host`` or
    ``host:port`` entries). A user-supplied endpoint makes the service connect
    where the user says (server-side request forgery): services that let users
    create destinations should set the allow-list."""
    allowed = {_allow_entry(e) for e in settings.endpoint_allowlist} if settings is not None else set()
    for key in names:
        value = options.get(key)
        if value is None or value == "":
            continue
        _, host, port = parse_endpoint(value if isinstance(value, str) else repr(value), key=key)
        if allowed and host not in allowed and (port is None or f"{host}:{port}" not in allowed):
            raise ConfigurationError(
                f"option {key}={value!r} names a host that OCS_TRANSFER_ENDPOINT_ALLOWLIST does not allow"
                f" (allowed: {', '.join(sorted(allowed))})"
            )


def _allow_entry(entry: str) -> str:
    host, sep, port = entry.strip().lower().rpartition(":")
    if sep and port.isdigit() and not entry.strip().endswith("]"):
        return f"{host.rstrip('.')}:{port}"
    return entry.strip().lower().rstrip(".")


def check_ambient_credentials(
    provider_cls: type[Any],
    options: Mapping[str, Any],
    credentials: Mapping[str, Any],
    scope: str | None,
    settings: Settings | None,
) -> None:
    """Refuse a user-made destination that would run as the service's own
    identity (see the provider's ``ambient_identity``), unless
    ``OCS_TRANSFER_ALLOW_AMBIENT_CREDENTIALS`` allows it."""
    if scope not in USER_SCOPES or (settings is not None and settings.allow_ambient_credentials):
        return
    describe = getattr(provider_cls, "ambient_identity", None)
    identity = describe(options, credentials) if describe is not None else None
    if identity:
        raise ConfigurationError(
            f"a {scope} {provider_cls.name} destination must bring its own credentials: without them it would run"
            f" as this service's own identity ({identity}). Give the provider's credentials"
            f" ({', '.join(provider_cls.credential_fields)}), make it an organization destination, or have an"
            " operator set OCS_TRANSFER_ALLOW_AMBIENT_CREDENTIALS=true"
        )


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_local_folders(provider_cls: type[Any], options: Mapping[str, Any]) -> None:
    """The provider's ``local_paths`` are folders: one that exists as
    something else (a file) is refused, saying which."""
    local_paths = getattr(provider_cls, "local_paths", None)
    for path in local_paths(options) if local_paths is not None else ():
        full = os.path.abspath(os.path.expanduser(str(path)))
        if os.path.lexists(full) and not os.path.isdir(full):
            raise ConfigurationError(
                f"the {getattr(provider_cls, 'name', 'provider')} destination's folder {str(path)!r} is a file"
                f" ({full}), not a folder; give a folder (a missing one is created)"
            )


def check_local_roots(
    provider_cls: type[Any], options: Mapping[str, Any], scope: str | None, settings: Settings | None
) -> None:
    """A user-made destination's local paths (the provider's ``local_paths``)
    must resolve (symlinks followed) under ``OCS_TRANSFER_LOCAL_ROOTS``; when
    that is unset, they must stay out of :data:`SYSTEM_DIRECTORIES` and hidden
    folders."""
    if scope not in USER_SCOPES:
        return
    local_paths = getattr(provider_cls, "local_paths", None)
    paths = local_paths(options) if local_paths is not None else ()
    roots = tuple(os.path.realpath(os.path.expanduser(r)) for r in (settings.local_roots if settings else ()))
    for path in paths:
        if "\x00" in str(path):  # realpath raises ValueError on it
            raise ConfigurationError(f"the local folder {str(path)!r} contains a NUL character; give a real path")
        real = os.path.realpath(os.path.expanduser(str(path)))
        if roots:
            if not any(_under(real, root) for root in roots):
                raise ConfigurationError(
                    f"a {scope} destination may only use folders under OCS_TRANSFER_LOCAL_ROOTS"
                    f" ({', '.join(roots)}); {str(path)!r} resolves to {real!r}"
                )
        elif real == "/" or any(_under(real, d) for d in SYSTEM_DIRECTORIES) or _hidden(real):
            raise ConfigurationError(
                f"a {scope} destination may not use the system or hidden folder {real!r}; pick a data folder,"
                " or have an operator set OCS_TRANSFER_LOCAL_ROOTS to the folders users may use"
            )


def _hidden(path: str) -> bool:
    """A hidden folder on the way (``~/.ssh``, ``~/.aws``, ``~/.config``...)."""
    return any(part.startswith(".") for part in path.split(os.sep) if part)
