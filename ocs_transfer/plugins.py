"""The plugin manager and the registries it fills.

The manager is built on first use, never at import: the built-in plugins
(:data:`DEFAULT_PLUGINS`) register through the same hooks as third-party ones,
then every entry point in the ``ocs_transfer`` group is loaded. Each registry
(providers, file types, commands) is filled when it is first needed, and a
provider registered by dotted path is imported only when it is used: building
a local store imports no command-line, file-type or cloud code.

Tests and applications that want only the built-ins set
``OCS_TRANSFER_DISABLE_ENTRYPOINTS=1`` or call :func:`reset` with
``load_entrypoints=False``. A single plugin can be blocked by its entry-point
name with ``OCS_TRANSFER_BLOCK_PLUGINS=name1,name2``.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
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
    "broken_plugins",
    "commands",
    "command_names",
    "datafile_types",
    "get_command",
    "get_plugin_manager",
    "get_provider",
    "import_object",
    "list_plugins",
    "provider_for_scheme",
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
    "ocs_transfer.ingest.builtin",
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


#: The registering hooks, one registry each.
_PROVIDERS = "ocs_transfer_register_providers"
_DATAFILE_TYPES = "ocs_transfer_register_datafile_types"
_COMMANDS = "ocs_transfer_register_commands"


@attrs.define
class _Entry:
    value: Any
    plugin: str


@attrs.frozen
class _LazyProvider:
    """A provider registered by dotted path, imported on first use."""

    path: str
    name: str
    schemes: tuple[str, ...]


@attrs.frozen
class _LazyCommand:
    """A command registered by dotted path, imported when it is run (or when
    ``--help`` lists it)."""

    path: str
    name: str


@attrs.define
class _State:
    pm: pluggy.PluginManager
    tables: dict[str, dict[str, _Entry]]  # hook name -> its registry, from its first use on
    #: entry-point name -> why that plugin was not loaded
    broken: dict[str, str] = attrs.Factory(dict)
    #: entry-point name -> the distribution it came from (see :func:`entry_points`)
    dists: dict[str, Any] = attrs.Factory(dict)


def import_object(path: str) -> Any:
    """The object a dotted path names, ``"package.module:Name"`` or
    ``"package.module.Name"``. Raises :class:`ImportError` saying what is
    missing."""
    module_path, colon, name = path.partition(":")
    if not colon:
        module_path, _, name = path.rpartition(".")
    if not module_path or not name:
        raise ImportError(f"{path!r} is not a dotted path such as 'package.module:Class'")
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise ImportError(f"module {module_path} was not found ({exc})") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"class {name} does not exist in module {module_path}") from None


def _provider_entry(plugin: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    if len(args) == 1 and isinstance(args[0], str):
        path, name, schemes = args[0], kwargs.pop("name", None), kwargs.pop("schemes", ())
        if kwargs or not _is_provider_name(name):
            raise PluginError(
                f"plugin {plugin!r}: register({path!r}, name=..., schemes=...) needs a lowercase provider name"
                " and nothing else"
            )
        if isinstance(schemes, str) or not all(isinstance(x, str) for x in schemes):
            raise PluginError(f"plugin {plugin!r}: provider {name!r}: schemes must be a tuple of strings")
        return name, _LazyProvider(path, name, tuple(schemes))
    if len(args) != 1 or kwargs:
        raise PluginError('register(StoreClass) takes exactly one argument, or register("pkg.module:Class", name=...)')
    _check_provider(args[0])
    return args[0].name, args[0]


def _is_provider_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and name == name.lower()


def _check_provider(cls: Any) -> None:
    from .storage.base import FileStore

    if not (isinstance(cls, type) and issubclass(cls, FileStore)):
        raise PluginError(f"a provider must be a FileStore subclass, got {cls!r}")
    if not _is_provider_name(getattr(cls, "name", None)):
        raise PluginError(f"provider class {cls.__qualname__} needs a lowercase str class variable 'name'")


def _datafile_entry(plugin: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    if len(args) != 2 or kwargs:
        raise PluginError('register(".ext", DataFileClass) takes exactly two arguments')
    ext, cls = args
    if not (isinstance(ext, str) and ext.startswith(".") and len(ext) > 1):
        raise PluginError(f"a file-type extension must start with a dot, got {ext!r}")
    if not isinstance(cls, str):
        from .input.datafile import DataFile

        if not (isinstance(cls, type) and issubclass(cls, DataFile)):
            raise PluginError(f"file type {ext!r}: {cls!r} is not a DataFile subclass or a dotted path to one")
    return ext.lower(), cls


def _command_entry(plugin: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    if len(args) == 1 and isinstance(args[0], str):
        name = kwargs.pop("name", None)
        if kwargs or not (isinstance(name, str) and name):
            raise PluginError(
                f"plugin {plugin!r}: register({args[0]!r}) names a click.Command by dotted path and needs"
                " name=..., the command's name, and nothing else"
            )
        return name, _LazyCommand(args[0], name)
    import click

    if len(args) != 1 or kwargs or not isinstance(args[0], click.Command) or not args[0].name:
        raise PluginError(
            'register(command) takes one named click.Command, or register("pkg.module:command", name=...)'
        )
    return args[0].name, args[0]


_ENTRY: dict[str, tuple[str, Callable[[str, tuple[Any, ...], dict[str, Any]], tuple[str, Any]]]] = {
    _PROVIDERS: ("provider", _provider_entry),
    _DATAFILE_TYPES: ("file type", _datafile_entry),
    _COMMANDS: ("command", _command_entry),
}


_DIST_SUFFIXES = (".dist-info", ".egg-info")
_DIST_DIR = re.compile(r"(?P<name>[^-]+)(?:-[^-]*)?\.(?:dist|egg)-info", re.IGNORECASE)


def entry_points(group: str) -> list[tuple[str, str, Any]]:
    """``(name, "module:attr", distribution)`` of each entry point in
    ``group``, from the installed distributions' ``entry_points.txt``.

    What :func:`importlib.metadata.entry_points` gives, read straight from the
    ``.dist-info``/``.egg-info`` directories on :data:`sys.path` (the first
    distribution of a name wins, as there), because importing
    :mod:`importlib.metadata` costs more than many commands take to run. A
    zip file or an egg on the path is read by importlib.metadata itself. The
    distribution is its metadata directory, or an
    :class:`importlib.metadata.Distribution` when importlib.metadata read it.
    """
    found: list[tuple[str, str, Any]] = []
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        if os.path.isfile(folder) or folder.lower().endswith(".egg"):  # a zip or an egg: importlib.metadata reads it
            return _importlib_entry_points(group)
        try:
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_DIST_SUFFIXES))
        except OSError:
            continue
        for dirname in names:
            match = _DIST_DIR.fullmatch(dirname)
            if match is None:
                continue
            dist = re.sub(r"[-_.]+", "_", match["name"]).lower()
            if dist in seen:
                continue
            seen.add(dist)
            path = os.path.join(folder, dirname)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as fp:
                    text = fp.read()
            except OSError:
                continue
            if f"[{group}]" in text:
                found.extend((name, value, path) for name, value in _section(text, group))
    return found


def _section(text: str, group: str) -> Iterator[tuple[str, str]]:
    """The ``name = value`` lines of section ``[group]`` of an INI text."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group:
            name, sep, value = line.partition("=")
            if sep:
                yield name.strip(), value.partition("[")[0].strip()  # "module:attr [extra]"


def _importlib_entry_points(group: str) -> list[tuple[str, str, Any]]:
    import importlib.metadata

    return [(ep.name, ep.value, ep.dist) for ep in importlib.metadata.entry_points(group=group)]


def _load_entry_point(value: str) -> object:
    """The object an entry point's ``module:attr.attr`` value names."""
    module_name, _, attr = value.partition(":")
    obj: object = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _build(load_entrypoints: bool) -> _State:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    blocked = [b.strip() for b in os.environ.get("OCS_TRANSFER_BLOCK_PLUGINS", "").split(",") if b.strip()]
    for name in blocked:
        pm.set_blocked(name)
    broken: dict[str, str] = {}
    dists: dict[str, Any] = {}
    if load_entrypoints:
        for name, value, dist in entry_points(hookspecs.PROJECT):
            if pm.has_plugin(name) or pm.is_blocked(name):
                continue
            try:
                pm.register(_load_entry_point(value), name=name)
            except Exception as exc:  # a broken plugin must not take every command down with it
                broken[name] = f"{type(exc).__name__}: {exc}"
                continue
            dists[name] = dist
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:  # e.g. a misspelt hook name
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            if name in DEFAULT_PLUGINS:
                raise
            pm.unregister(exc.plugin)
            broken[name] = str(exc)
    for name, why in broken.items():
        log.info("%s", broken_message(name, why))  # the CLI prints it; get_provider names it
    return _State(pm, {}, broken, dists)


def broken_message(name: str, why: str) -> str:
    """What to tell a user about the broken plugin ``name``."""
    return (
        f"plugin {name!r} is broken and was not loaded ({why}); fix or uninstall its package,"
        f" or skip it with OCS_TRANSFER_BLOCK_PLUGINS={name}"
    )


def broken_plugins() -> dict[str, str]:
    """Plugins that failed to load (entry-point name -> why): they are left
    out, and every command still works."""
    return dict(_get_state().broken)


def _call(pm: pluggy.PluginManager, plugin: object, plugin_name: str, hook_name: str, table: dict[str, _Entry]) -> None:
    """Let one plugin register into ``table`` through ``hook_name``."""
    impl = getattr(plugin, hook_name, None)
    if impl is None or not pm.parse_hookimpl_opts(plugin, hook_name):
        return
    kind, entry = _ENTRY[hook_name]

    def register(*args: Any, **kwargs: Any) -> None:
        name, value = entry(plugin_name, args, kwargs)
        if name in table:
            raise PluginError(
                f"{kind} {name!r} is registered twice: by plugin {table[name].plugin!r} and by plugin"
                f" {plugin_name!r}; uninstall one of them or block it with OCS_TRANSFER_BLOCK_PLUGINS"
            )
        table[name] = _Entry(value, plugin_name)

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


def _table(hook_name: str) -> dict[str, _Entry]:
    """The registry ``hook_name`` fills, asking every plugin on first use."""
    with _lock:
        state = _get_state()
        if hook_name not in state.tables:
            table: dict[str, _Entry] = {}
            for plugin_name, plugin in state.pm.list_name_plugin():
                if plugin is not None:
                    _call(state.pm, plugin, plugin_name, hook_name, table)
            state.tables[hook_name] = table
        return state.tables[hook_name]


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
    """Register ``plugin`` for the duration of a ``with`` block (tests, demos).
    Its registrations are checked at once: a bad one raises here."""
    with _lock:
        state = _get_state()
        for hook_name in _ENTRY:
            _table(hook_name)
        before = {hook_name: dict(table) for hook_name, table in state.tables.items()}
        state.pm.register(plugin, name=name)
        try:
            for hook_name, table in state.tables.items():
                _call(state.pm, plugin, name, hook_name, table)
        except BaseException:
            state.pm.unregister(name=name)
            state.tables = before
            raise
    try:
        yield
    finally:
        with _lock:
            state.pm.unregister(name=name)
            state.tables = before


def _resolve(name: str, entry: _Entry) -> type[FileStore]:
    """The provider class of ``entry``, importing a lazily registered one."""
    lazy = entry.value
    if not isinstance(lazy, _LazyProvider):
        return entry.value  # type: ignore[no-any-return]
    try:
        cls = import_object(lazy.path)
    except ImportError as exc:
        raise PluginError(f"provider {name!r} of plugin {entry.plugin!r} cannot be loaded: {exc}") from None
    try:
        _check_provider(cls)
    except PluginError as exc:
        raise PluginError(f"provider {name!r} of plugin {entry.plugin!r}: {exc}") from None
    if cls.name != lazy.name or tuple(cls.schemes) != lazy.schemes:
        raise PluginError(
            f"plugin {entry.plugin!r} registered {lazy.path} as provider {lazy.name!r} with schemes {lazy.schemes},"
            f" but the class says {cls.name!r} with {tuple(cls.schemes)}; make the registration match the class"
        )
    with _lock:
        entry.value = cls
    return cls  # type: ignore[no-any-return]


def providers() -> dict[str, type[FileStore]]:
    """Provider name -> FileStore subclass, for every installed provider
    (this imports them all)."""
    return {name: _resolve(name, e) for name, e in sorted(_table(_PROVIDERS).items())}


def get_provider(name: str) -> type[FileStore]:
    """The FileStore subclass for provider ``name``.

    Raises :class:`ProviderNotFoundError` listing the installed providers and
    the package that would provide ``name``.
    """
    table = _table(_PROVIDERS)
    key = name.lower()
    if key in table:
        return _resolve(key, table[key])
    installed = ", ".join(sorted(table)) or "none"
    broken = _get_state().broken
    also = f"; broken plugins that were not loaded: {', '.join(sorted(broken))}" if broken else ""
    if key not in KNOWN_PROVIDER_PACKAGES and not re.fullmatch(r"[a-z0-9][a-z0-9_.+-]*", key):
        raise ProviderNotFoundError(f"no storage provider named {name!r} (installed: {installed}){also}")
    package = KNOWN_PROVIDER_PACKAGES.get(key, f"ocs-transfer-{key}")
    raise ProviderNotFoundError(
        f"no storage provider named {name!r} is installed (installed: {installed});"
        f" to use it, run: pip install '{package}'{also}"
    )


def provider_for_scheme(scheme: str) -> type[FileStore] | None:
    """The provider that claims URL scheme ``scheme`` (``s3``, ``file``, ...),
    or None; imports only that provider."""
    for name, entry in sorted(_table(_PROVIDERS).items()):
        if scheme in entry.value.schemes:  # a _LazyProvider's or a FileStore class's
            return _resolve(name, entry)
    return None


def datafile_types() -> dict[str, Any]:
    """Extension -> DataFile subclass (or dotted path) registered by plugins,
    built-ins included."""
    return {ext: e.value for ext, e in _table(_DATAFILE_TYPES).items()}


def command_names() -> list[str]:
    """The names of the registered commands, built-ins included, sorted;
    imports none of them."""
    return sorted(_table(_COMMANDS))


def get_command(name: str) -> Any:
    """The click command registered as ``name`` (importing it if it was
    registered by dotted path), or ``None``."""
    entry = _table(_COMMANDS).get(name)
    if entry is None:
        return None
    lazy = entry.value
    if not isinstance(lazy, _LazyCommand):
        return lazy
    import click

    try:
        command = import_object(lazy.path)
    except ImportError as exc:
        raise PluginError(f"command {name!r} of plugin {entry.plugin!r} cannot be loaded: {exc}") from None
    if not isinstance(command, click.Command) or command.name != name:
        raise PluginError(
            f"plugin {entry.plugin!r} registered {lazy.path} as command {name!r}, but it is"
            f" {'command ' + repr(command.name) if isinstance(command, click.Command) else 'no click.Command'};"
            " make the registration match the command"
        )
    with _lock:
        entry.value = command
    return command


def commands() -> list[Any]:
    """The click commands registered by plugins, built-ins included (this
    imports them all)."""
    return [get_command(name) for name in command_names()]


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
    import importlib.metadata

    state = _get_state()
    core_version = _version("ocs-transfer")
    out = []
    for name, plugin in state.pm.list_name_plugin():
        if plugin is None:
            continue
        dist = state.dists.get(name)
        if isinstance(dist, str):
            dist = importlib.metadata.Distribution.at(dist)
        builtin = name in DEFAULT_PLUGINS
        package = dist.metadata["Name"] if dist is not None else ("ocs-transfer" if builtin else None)
        version = dist.version if dist is not None else (core_version if builtin else None)
        out.append(
            PluginInfo(
                name=name,
                package=package,
                version=version,
                providers=tuple(sorted(k for k, e in _table(_PROVIDERS).items() if e.plugin == name)),
                datafile_types=tuple(sorted(k for k, e in _table(_DATAFILE_TYPES).items() if e.plugin == name)),
                commands=tuple(sorted(k for k, e in _table(_COMMANDS).items() if e.plugin == name)),
                builtin=builtin,
            )
        )
    return out


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
