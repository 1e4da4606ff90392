"""The plugin system: hooks, registries, errors, and a real installed plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest

from ocs_transfer import hookimpl, plugins
from ocs_transfer.exceptions import PluginError, ProviderNotFoundError
from ocs_transfer.storage.memory import MemoryStore

pytestmark = pytest.mark.usefixtures("builtin_plugins_only")


class DuplicateMemory(MemoryStore):
    name: ClassVar[str] = "memory"


class Other(MemoryStore):
    name: ClassVar[str] = "other-memory"


class Lazy(MemoryStore):
    name: ClassVar[str] = "lazy-memory"
    schemes: ClassVar[tuple[str, ...]] = ("lazym",)


class DupPlugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Callable[[type[Any]], None]) -> None:
        register(DuplicateMemory)


class GoodPlugin:
    @hookimpl
    def ocs_transfer_register_providers(self, register: Callable[[type[Any]], None]) -> None:
        register(Other)

    @hookimpl
    def ocs_transfer_register_datafile_types(self, register: Callable[[str, Any], None]) -> None:
        register(".otherfits", "some_package.module.OtherFits")


def test_builtins_register_through_the_same_hooks() -> None:
    assert plugins.get_provider("memory") is MemoryStore
    names = {info.name for info in plugins.list_plugins()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    assert "plugins" in {c.name for c in plugins.commands()}


def test_unknown_provider_lists_installed_and_package_to_install() -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        plugins.get_provider("dropbox")
    message = str(info.value)
    assert "memory" in message and "pip install 'ocs-transfer-dropbox'" in message


def test_duplicate_name_is_rejected_naming_both_plugins() -> None:
    with pytest.raises(PluginError) as info, plugins.temporary_plugin(DupPlugin(), name="dup"):
        pass
    assert "'memory'" in str(info.value) and "dup" in str(info.value) and "storage.builtin" in str(info.value)
    assert plugins.get_provider("memory") is MemoryStore  # nothing half-registered


def test_temporary_plugin_registers_and_unregisters() -> None:
    with plugins.temporary_plugin(GoodPlugin(), name="good"):
        assert plugins.get_provider("other-memory") is Other
        assert plugins.datafile_types()[".otherfits"] == "some_package.module.OtherFits"
        info = next(i for i in plugins.list_plugins() if i.name == "good")
        assert info.providers == ("other-memory",) and info.datafile_types == (".otherfits",)
    with pytest.raises(ProviderNotFoundError):
        plugins.get_provider("other-memory")


@pytest.mark.parametrize(
    ("hook", "args", "message"),
    [
        ("ocs_transfer_register_providers", (object,), "FileStore subclass"),
        ("ocs_transfer_register_datafile_types", ("fits", "a.B"), "must start with a dot"),
        ("ocs_transfer_register_datafile_types", (".x", int), "not a DataFile subclass"),
        ("ocs_transfer_register_commands", ("not a command",), "click.Command"),
    ],
)
def test_wrong_types_are_rejected(hook: str, args: tuple[Any, ...], message: str) -> None:
    def impl(register: Callable[..., None]) -> None:
        register(*args)

    plugin = type("Bad", (), {hook: staticmethod(hookimpl(impl))})()
    with pytest.raises(PluginError, match=message), plugins.temporary_plugin(plugin, name="bad"):
        pass


class LazyPlugin:
    """Registers a provider by dotted path, as the built-ins do."""

    def __init__(self, path: str, name: str = "lazy-memory", schemes: tuple[str, ...] = ("lazym",)) -> None:
        self.args = (path, name, schemes)

    @hookimpl
    def ocs_transfer_register_providers(self, register: Callable[..., None]) -> None:
        path, name, schemes = self.args
        register(path, name=name, schemes=schemes)


def test_provider_registered_by_path_is_imported_on_first_use() -> None:
    with plugins.temporary_plugin(LazyPlugin(f"{__name__}:Lazy"), name="lazy"):
        assert plugins.provider_for_scheme("lazym") is Lazy
        assert plugins.get_provider("lazy-memory") is Lazy
        assert plugins.provider_for_scheme("memory") is MemoryStore
        info = next(i for i in plugins.list_plugins() if i.name == "lazy")
        assert info.providers == ("lazy-memory",)


def test_builtin_providers_are_imported_only_when_used() -> None:
    code = (
        "import sys; from ocs_transfer.storage import get_store; get_store('memory://x');"
        " print(' '.join(sorted(m for m in sys.modules if m.startswith(('ocs_transfer', 'click', 'tenacity')))))"
    )
    env = {**os.environ, "OCS_TRANSFER_DISABLE_ENTRYPOINTS": "1"}
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout.split())  # fmt: skip
    assert "ocs_transfer.storage.memory" in loaded
    assert not loaded & {"ocs_transfer.storage.s3", "ocs_transfer.storage.gcs", "ocs_transfer.settings",
                         "ocs_transfer.input.datafile", "ocs_transfer.cli", "click", "tenacity"}  # fmt: skip


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (LazyPlugin("no_such_module_here:Store"), "module no_such_module_here was not found"),
        (LazyPlugin(f"{__name__}:Nothing"), "class Nothing does not exist in module"),
        (LazyPlugin(f"{__name__}:GoodPlugin"), "FileStore subclass"),
        (LazyPlugin(f"{__name__}:Lazy", schemes=("oth",)), "make the registration match"),
        (LazyPlugin(f"{__name__}:Other"), "make the registration match"),  # the class's name differs
    ],
)
def test_provider_registered_by_a_bad_path_fails_when_used(plugin: LazyPlugin, message: str) -> None:
    with plugins.temporary_plugin(plugin, name="lazy"), pytest.raises(PluginError, match=message) as info:
        plugins.get_provider("lazy-memory")
    assert "'lazy'" in str(info.value)  # says whose registration it is


@pytest.mark.parametrize(
    "call",
    [
        lambda register: register("pkg.mod:Store"),  # no name
        lambda register: register("pkg.mod:Store", name="Upper"),
        lambda register: register("pkg.mod:Store", name="x", schemes="x"),  # a str, not a tuple
        lambda register: register("pkg.mod:Store", name="x", colour="red"),
        lambda register: register(Other, name="x"),
    ],
)
def test_provider_registration_mistakes_are_refused_at_once(call: Callable[[Any], None]) -> None:
    plugin = type("Bad", (), {"ocs_transfer_register_providers": staticmethod(hookimpl(call))})()
    with pytest.raises(PluginError, match=r"plugin 'bad'|register"), plugins.temporary_plugin(plugin, name="bad"):
        pass


def test_import_object_takes_both_spellings() -> None:
    assert plugins.import_object("ocs_transfer.storage.memory:MemoryStore") is MemoryStore
    assert plugins.import_object("ocs_transfer.storage.memory.MemoryStore") is MemoryStore
    with pytest.raises(ImportError, match="not a dotted path"):
        plugins.import_object("NoDots")


def test_hook_name_typo_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def ocs_transfer_register_provider(self, register: Any) -> None:  # missing "s"
            pass

    pm = plugins.get_plugin_manager()
    pm.register(Typo(), name="typo")
    try:
        with pytest.raises(pluggy.PluginValidationError):
            pm.check_pending()
    finally:
        pm.unregister(name="typo")


THROWAWAY = '''
from typing import ClassVar

from ocs_transfer import hookimpl
from ocs_transfer.storage.memory import MemoryStore


class ThrowawayStore(MemoryStore):
    name: ClassVar[str] = "throwaway"
    schemes: ClassVar[tuple[str, ...]] = ("throwaway",)


@hookimpl
def ocs_transfer_register_providers(register):
    register(ThrowawayStore)


@hookimpl
def ocs_transfer_register_datafile_types(register):
    register(".thrw", "ocs_transfer_throwaway:ThrowawayFile")
'''


@pytest.fixture(scope="module")
def throwaway_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real distribution with an entry point, pip-installed into this environment."""
    src = tmp_path_factory.mktemp("throwaway")
    (src / "ocs_transfer_throwaway.py").write_text(THROWAWAY)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "ocs-transfer-throwaway"
            version = "0.0.7"
            dependencies = []

            [project.entry-points.ocs_transfer]
            throwaway = "ocs_transfer_throwaway"

            [tool.hatch.build.targets.wheel]
            include = ["ocs_transfer_throwaway.py"]
            """
        )
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(src)], check=True)
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "--yes", "ocs-transfer-throwaway"], check=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"}
    exe = Path(sys.executable).with_name("ocs-transfer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=False)


@pytest.mark.slow
@pytest.mark.usefixtures("throwaway_installed")
def test_installed_plugin_appears_without_core_changes() -> None:
    result = _cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    mine = listed["throwaway"]
    assert mine["package"] == "ocs-transfer-throwaway" and mine["version"] == "0.0.7"
    assert mine["providers"] == ["throwaway"] and mine["datafile_types"] == [".thrw"]
    table = _cli("plugins")
    assert "ocs-transfer-throwaway" in table.stdout and "providers: throwaway" in table.stdout

    code = (
        "import io; from ocs_transfer.storage import get_store; s = get_store('throwaway://x');"
        " print(type(s).__name__, s.put(io.BytesIO(b'abc'), 'a/b.txt').size)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OCS_TRANSFER_DISABLE_ENTRYPOINTS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["ThrowawayStore", "3"]


@pytest.mark.slow
@pytest.mark.usefixtures("throwaway_installed")
def test_blocked_plugin_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCS_TRANSFER_BLOCK_PLUGINS", "throwaway")
    result = _cli("plugins", "--json")
    assert "throwaway" not in {p["name"] for p in json.loads(result.stdout)}
