"""User-given options into a provider's ``Config``, typed by its fields
(through :meth:`FileStore.config_from_options`; see ``docs/plugins.md``), and
user-given URLs split without the standard library's ValueError."""

from __future__ import annotations

import functools
import os
import types
import typing
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs

from ..exceptions import ConfigurationError

__all__ = ["coerce_option", "config_from_options", "option_problem", "split_url"]

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})
_NONE = frozenset({"", "none", "null"})


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None`` / ``Optional[T]``; ``(kind, False)`` otherwise."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0], True
    return kind, False


def coerce_option(name: str, kind: Any, value: Any) -> Any:
    """``value`` as a ``kind`` (a field's annotation): strings from a command
    line become bools, ints, floats or ``None``; bools and numbers are
    checked; other values pass unchanged (the Config's validators judge them).
    Raises :class:`ConfigurationError` saying what the option wants."""
    target, optional = _unwrap_optional(kind)
    if value is None:
        if optional or target is Any:
            return None
        raise ConfigurationError(f"option {name!r} needs a value")
    if (
        isinstance(value, str)
        and optional
        and (value.strip() == "" or (target is not str and value.strip().lower() in _NONE))
    ):
        return None  # an empty value (or, for non-text fields, "none") means "not set"
    if target is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigurationError(f"option {name!r} must be true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigurationError(f"option {name!r} must be a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip().replace("_", ""))
        except ValueError:
            raise ConfigurationError(f"option {name!r} must be a whole number, got {value!r}") from None
    if target is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise ConfigurationError(f"option {name!r} must be a number, got {value!r}") from None
    if target is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # --option prefix=2024 arrives as JSON 2024
    if target is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


@functools.lru_cache(maxsize=256)
def _type_hints(config_cls: type[Any]) -> Mapping[str, Any]:
    """A config class's resolved annotations (resolving them costs more than
    building the config: every attempt opens its store)."""
    try:
        return typing.get_type_hints(config_cls)
    except Exception:  # unresolvable annotations: leave the values as given
        return {}


def split_url(url: str) -> SplitResult:
    """:func:`urllib.parse.urlsplit` of a user-given URL, raising
    :class:`ConfigurationError` where it raises ValueError (an unclosed or
    empty ``[`` host: ``https://[x``, ``http://[]``). The URL is not repeated
    in the message: it may hold user info."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(
            f"a URL cannot be read ({exc}): a host in [brackets] must be a whole IPv6 address, e.g. https://[::1]:8080"
        ) from None


def option_problem(name: str, value: Any, annotation: Any) -> str:
    """What is wrong with one option value for a field annotated
    ``annotation``, or ``""``: a missing value for a field that needs one,
    a value of the wrong kind for a text, number or true/false field, a NUL
    character, or a ``url``/``*_url`` option that is not an http(s) URL."""
    target, optional = _unwrap_optional(annotation)
    if value is None:  # (an annotation left as text could not be resolved: nothing known)
        return "" if optional or target is Any or isinstance(target, str) else "needs a value"
    kinds = {t for t in getattr(annotation, "__args__", (annotation,)) if t is not type(None)}
    if kinds and kinds <= {str, int, float, bool}:
        if bool in kinds and not isinstance(value, bool) and not kinds & {str}:
            return "must be true or false"
        if kinds <= {int, float} and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return "must be a number"
        if kinds == {int} and not isinstance(value, int):
            return "must be a whole number"
        if kinds == {str} and not isinstance(value, str):
            return "must be text"
    if isinstance(value, str) and "\x00" in value:
        return "must not contain a NUL character"
    if (name == "url" or name.endswith("_url")) and isinstance(value, str) and value:
        try:
            parts = urlsplit(value)
        except ValueError:
            return "must be an http:// or https:// URL with a host (a host in [brackets] is a whole IPv6 address)"
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "must be an http:// or https:// URL with a host"
    return ""


def config_from_options(config_cls: type[Any], options: Mapping[str, Any], *, provider: str) -> Any:
    """Build ``config_cls`` (an attrs class) from ``options``, coercing each
    value to its field's annotated type (see :func:`coerce_option`)."""
    if not attrs.has(config_cls):
        try:
            return config_cls(**options)
        except TypeError as exc:
            raise ConfigurationError(f"bad options for provider {provider!r}: {exc}") from None
    hints = _type_hints(config_cls)
    fields = {f.name: f for f in attrs.fields(config_cls) if f.init}
    unknown = sorted(map(str, set(options) - {f.alias or name for name, f in fields.items()}))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for provider {provider!r};"
            f" it takes {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = field.alias or name
        if key in options:
            values[key] = coerce_option(key, hints.get(name, Any), options[key])
            problem = option_problem(key, values[key], hints.get(name, Any))
            if problem:
                raise ConfigurationError(f"provider {provider!r}: option {key}={values[key]!r} {problem}")
    missing = [f.alias or n for n, f in fields.items() if f.default is attrs.NOTHING and (f.alias or n) not in values]
    if missing:
        raise ConfigurationError(f"provider {provider!r} needs the option(s) {', '.join(missing)}")
    try:
        return config_cls(**values)
    except TypeError as exc:
        raise ConfigurationError(f"bad options for provider {provider!r}: {exc}") from None
