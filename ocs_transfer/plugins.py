"""The plugin manager and the registries it fills.

The manager is built on first use, never at import: the built-in plugins
(:data:`DEFAULT_PLUGINS`) register through the same hooks as third-party ones,
then every entry point in the ``ocs_transfer`` group is loaded.

Tests and applications that want only the built-ins set
``OCS_TRANSFER_DISABLE_ENTRYPOINTS=1`` or call :func:`reset` with
``load_entrypoints=False``. A single plugin can be blocked by its entry-point
name with ``OCS_TRANSFER_BLOCK_PLUGINS=name1,name2``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .exceptions import PluginError, ProviderNotFoundError

if TYPE_CHECKING:
    from .storage.base import FileStore

__all__ = [
    "DEFAULT_PLUGINS",
    "PluginInfo",
    "commands",
    "datafile_types",
    "get_plugin_manager",
    "get_provider",
    "list_plugins",
    "providers",
    "reset",
    "temporary_plugin",
]

log = logging.getLogger(__name__)

#: Modules of the core that register built-in things through the hooks.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "ocs_transfer.input.builtin",
    "ocs_transfer.storage.builtin",
    "ocs_transfer.transfer.builtin",
    "ocs_transfer.cli_builtin",
)

#: Provider name -> the distribution that provides it, for "pip install" hints.
KNOWN_PROVIDER_PACKAGES: dict[str, str] = {
    "local": "ocs-transfer-local",
    "webdav": "ocs-transfer-local",
    "dropbox": "ocs-transfer-dropbox",
    "gdrive": "ocs-transfer-gdrive",
    "seafile": "ocs-transfer-seafile",
    "s3": "ocs-transfer[s3]",
    "gcs": "ocs-transfer[gcs]",
}

_lock = threading.RLock()
_state: _State | None = None


@attrs.define
class _Entry:
    value: Any
    plugin: str


@attrs.define
class _State:
    pm: pluggy.PluginManager
    providers: dict[str, _Entry]
    datafile_types: dict[str, _Entry]
    commands: dict[str, _Entry]


def _collector(
    kind: str,
    table: dict[str, _Entry],
    plugin: str,
    key: Callable[[tuple[Any, ...]], str],
    check: Callable[[tuple[Any, ...]], None],
    value: Callable[[tuple[Any, ...]], Any],
) -> Callable[..., None]:
    def register(*args: Any) -> None:
        check(args)
        name = key(args)
        if name in table:
            raise PluginError(
                f"{kind} {name!r} is registered twice: by plugin {table[name].plugin!r} and by plugin {plugin!r};"
                f" uninstall one of them or block it with OCS_TRANSFER_BLOCK_PLUGINS"
            )
        table[name] = _Entry(value(args), plugin)

    return register


def _check_provider(args: tuple[Any, ...]) -> None:
    from .storage.base import FileStore

    if len(args) != 1:
        raise PluginError("register(StoreClass) takes exactly one argument")
    cls = args[0]
    if not (isinstance(cls, type) and issubclass(cls, FileStore)):
        raise PluginError(f"a provider must be a FileStore subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name != name.lower():
        raise PluginError(f"provider class {cls.__qualname__} needs a lowercase str class variable 'name'")


def _check_datafile(args: tuple[Any, ...]) -> None:
    if len(args) != 2:
        raise PluginError('register(".ext", DataFileClass) takes exactly two arguments')
    ext, cls = args
    if not (isinstance(ext, str) and ext.startswith(".") and len(ext) > 1):
        raise PluginError(f"a file-type extension must start with a dot, got {ext!r}")
    if isinstance(cls, str):
        return
    from .input.datafile import DataFile

    if not (isinstance(cls, type) and issubclass(cls, DataFile)):
        raise PluginError(f"file type {ext!r}: {cls!r} is not a DataFile subclass or a dotted path to one")


def _check_command(args: tuple[Any, ...]) -> None:
    import click

    if len(args) != 1 or not isinstance(args[0], click.Command) or not args[0].name:
        raise PluginError("register(command) takes one named click.Command")


def _build(load_entrypoints: bool) -> _State:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    blocked = [b.strip() for b in os.environ.get("OCS_TRANSFER_BLOCK_PLUGINS", "").split(",") if b.strip()]
    for name in blocked:
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()
    state = _State(pm, {}, {}, {})
    for plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        _call_one(pm, plugin, plugin_name, state)
    return state


def _call_one(pm: pluggy.PluginManager, plugin: object, plugin_name: str, state: _State) -> None:
    calls: list[tuple[str, dict[str, _Entry], Callable[..., None]]] = [
        (
            "ocs_transfer_register_providers",
            state.providers,
            _collector("provider", state.providers, plugin_name, lambda a: a[0].name, _check_provider, lambda a: a[0]),
        ),
        (
            "ocs_transfer_register_datafile_types",
            state.datafile_types,
            _collector(
                "file type", state.datafile_types, plugin_name, lambda a: a[0].lower(), _check_datafile, lambda a: a[1]
            ),
        ),
        (
            "ocs_transfer_register_commands",
            state.commands,
            _collector("command", state.commands, plugin_name, lambda a: a[0].name, _check_command, lambda a: a[0]),
        ),
    ]
    for hook_name, _table, register in calls:
        impl = getattr(plugin, hook_name, None)
        if impl is None or not pm.parse_hookimpl_opts(plugin, hook_name):
            continue
        try:
            impl(register=register)
        except PluginError:
            raise
        except Exception as exc:  # a plugin's own bug: say whose
            raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def _get_state() -> _State:
    global _state
    with _lock:
        if _state is None:
            load = os.environ.get("OCS_TRANSFER_DISABLE_ENTRYPOINTS", "") not in ("1", "true", "yes")
            _state = _build(load_entrypoints=load)
        return _state


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager, built on first call."""
    return _get_state().pm


def reset(*, load_entrypoints: bool | None = None) -> None:
    """Forget the manager; the next use builds it again. With
    ``load_entrypoints`` given, build it now that way."""
    global _state
    with _lock:
        _state = None
        if load_entrypoints is not None:
            _state = _build(load_entrypoints)


@contextmanager
def temporary_plugin(plugin: object, name: str = "temporary") -> Iterator[None]:
    """Register ``plugin`` for the duration of a ``with`` block (tests, demos)."""
    with _lock:
        state = _get_state()
        state.pm.register(plugin, name=name)
        before = (dict(state.providers), dict(state.datafile_types), dict(state.commands))
        try:
            _call_one(state.pm, plugin, name, state)
        except BaseException:
            state.pm.unregister(name=name)
            state.providers, state.datafile_types, state.commands = before
            raise
    try:
        yield
    finally:
        with _lock:
            state.pm.unregister(name=name)
            state.providers, state.datafile_types, state.commands = before


def providers() -> dict[str, type[FileStore]]:
    """Provider name -> FileStore subclass, for every installed provider."""
    return {name: e.value for name, e in sorted(_get_state().providers.items())}


def get_provider(name: str) -> type[FileStore]:
    """The FileStore subclass for provider ``name``.

    Raises :class:`ProviderNotFoundError` listing the installed providers and
    the package that would provide ``name``.
    """
    table = _get_state().providers
    key = name.lower()
    if key in table:
        return table[key].value  # type: ignore[no-any-return]
    installed = ", ".join(sorted(table)) or "none"
    package = KNOWN_PROVIDER_PACKAGES.get(key, f"ocs-transfer-{key}")
    raise ProviderNotFoundError(
        f"no storage provider named {name!r} is installed (installed: {installed});"
        f" to use it, run: pip install '{package}'"
    )


def datafile_types() -> dict[str, Any]:
    """Extension -> DataFile subclass (or dotted path) registered by plugins,
    built-ins included."""
    return {ext: e.value for ext, e in _get_state().datafile_types.items()}


def commands() -> list[Any]:
    """The click commands registered by plugins, built-ins included."""
    return [e.value for _, e in sorted(_get_state().commands.items())]


@attrs.frozen
class PluginInfo:
    name: str
    package: str | None
    version: str | None
    providers: tuple[str, ...]
    datafile_types: tuple[str, ...]
    commands: tuple[str, ...]
    builtin: bool


def list_plugins() -> list[PluginInfo]:
    """Every registered plugin, with its distribution, version, and what it
    registered."""
    state = _get_state()
    dists: dict[int, Any] = {id(plugin): dist for plugin, dist in state.pm.list_plugin_distinfo()}
    core_version = _version("ocs-transfer")
    out = []
    for name, plugin in state.pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        builtin = name in DEFAULT_PLUGINS
        package = dist.metadata["Name"] if dist is not None else ("ocs-transfer" if builtin else None)
        version = dist.version if dist is not None else (core_version if builtin else None)
        out.append(
            PluginInfo(
                name=name,
                package=package,
                version=version,
                providers=tuple(sorted(k for k, e in state.providers.items() if e.plugin == name)),
                datafile_types=tuple(sorted(k for k, e in state.datafile_types.items() if e.plugin == name)),
                commands=tuple(sorted(k for k, e in state.commands.items() if e.plugin == name)),
                builtin=builtin,
            )
        )
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
