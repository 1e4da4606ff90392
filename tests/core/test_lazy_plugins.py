"""Commands registered by dotted path, and entry points read without
importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ocs_transfer import hookimpl, plugins
from ocs_transfer.cli import main
from ocs_transfer.exceptions import PluginError

pytestmark = pytest.mark.usefixtures("builtin_plugins_only")

COMMANDS = '''
import click

@click.command("hello-lazy")
def hello():
    """Say hello, lazily."""
    click.echo("hello from a lazy command")

misnamed = click.command("not-what-was-registered")(lambda: None)
not_a_command = 42
'''


@pytest.fixture
def command_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of click commands on sys.path, not yet imported."""
    name = f"lazy_commands_{os.getpid()}_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(COMMANDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _plugin(*registrations: tuple[str, str]) -> object:
    class Plugin:
        @hookimpl
        def ocs_transfer_register_commands(self, register: Callable[..., None]) -> None:
            for path, name in registrations:
                register(path, name=name)

    return Plugin()


def test_a_command_is_imported_only_when_it_runs(command_module: str) -> None:
    with plugins.temporary_plugin(_plugin((f"{command_module}:hello", "hello-lazy"))):
        assert "hello-lazy" in plugins.command_names()
        assert command_module not in sys.modules  # listed, not imported
        ran = CliRunner().invoke(main, ["hello-lazy"])
        assert ran.exit_code == 0, ran.output
        assert ran.output == "hello from a lazy command\n"
        assert command_module in sys.modules
        assert plugins.get_command("hello-lazy") is plugins.get_command("hello-lazy")  # imported once


def test_help_lists_lazy_commands_with_their_help(command_module: str) -> None:
    with plugins.temporary_plugin(_plugin((f"{command_module}:hello", "hello-lazy"))):
        helped = CliRunner().invoke(main, ["--help"])
    assert helped.exit_code == 0
    assert "hello-lazy" in helped.output and "Say hello, lazily." in helped.output


@pytest.mark.parametrize(("attribute", "message"), [
    ("misnamed", "but it is command 'not-what-was-registered'"),
    ("not_a_command", "but it is no click.Command"),
    ("missing", "class missing does not exist"),
])
def test_a_bad_registration_is_reported_when_used(command_module: str, attribute: str, message: str) -> None:
    with plugins.temporary_plugin(_plugin((f"{command_module}:{attribute}", "hello-lazy")), name="careless"):
        with pytest.raises(PluginError, match=message) as raised:
            plugins.get_command("hello-lazy")
        assert "careless" in str(raised.value)
        ran = CliRunner().invoke(main, ["hello-lazy"])
        helped = CliRunner().invoke(main, ["--help"])
    assert ran.exit_code == 2 and "No such command" in ran.output and message in ran.output
    assert helped.exit_code == 0 and "send" in helped.output  # the other commands still work


def test_registering_a_name_twice_is_refused(command_module: str) -> None:
    with pytest.raises(PluginError, match="registered twice"), plugins.temporary_plugin(
        _plugin((f"{command_module}:hello", "send"))
    ):
        pass


# -- entry points ---------------------------------------------------------------------------


def _write_dist(folder: Path, dirname: str, entry_points: str) -> None:
    info = folder / dirname
    info.mkdir(parents=True)
    name, _, version = dirname.rsplit(".", 1)[0].partition("-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version or '0'}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def _as_importlib_sees_them(path: list[str], group: str) -> list[tuple[str, str]]:
    probe = (
        "import importlib.metadata, json, sys\n"
        f"print(json.dumps([[e.name, e.value] for e in importlib.metadata.entry_points(group={group!r})]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return sorted(tuple(pair) for pair in json.loads(done.stdout))


@pytest.mark.parametrize("group", ["ocs_transfer", "console_scripts", "fsspec.specs", "pytest11"])
def test_entry_points_are_those_importlib_metadata_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         group: str) -> None:
    """The installed distributions, plus two folders of hand-made ones: the
    first of two same-named distributions wins, comments, other sections and
    extras are handled as importlib.metadata handles them."""
    first, second = tmp_path / "first", tmp_path / "second"
    _write_dist(first, "ocs_transfer_handmade-1.0.dist-info", f"""
        # a comment
        [other.group]
        ignored = nowhere:nothing

        [{group}]
        handmade = handmade_pkg.plugin:hooks [extra]
        # another comment
        spaced   =   spaced_pkg
        """)
    _write_dist(second, "ocs_transfer.handmade-2.0.dist-info", f"[{group}]\nshadowed = should_not:appear\n")
    _write_dist(second, "Other_Thing-0.3.egg-info", f"[{group}]\negg = egg_pkg:main\n")
    path = [str(first), str(second)]
    monkeypatch.setattr(sys, "path", [*path, *sys.path])
    ours = sorted((name, value) for name, value, _ in plugins.entry_points(group))
    theirs = _as_importlib_sees_them(path, group)
    expected_values = {value.partition("[")[0].strip() for _, value in theirs}
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    assert {v for _, v in ours} == expected_values
    assert ("handmade", "handmade_pkg.plugin:hooks") in ours and ("shadowed", "should_not:appear") not in ours


def test_plugins_lists_versions_of_plugins_found_without_importlib_metadata(all_plugins: None) -> None:
    found = {name: dist for name, _, dist in plugins.entry_points("ocs_transfer")}
    listed = {info.name: info for info in plugins.list_plugins()}
    for name in found:
        if name in listed:
            expected = importlib.metadata.distribution(listed[name].package or "").version
            assert listed[name].version == expected


def test_a_zip_on_the_path_is_read_by_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped_dist-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped-dist\nVersion: 1.0\n")
        zf.writestr("zipped_dist-1.0.dist-info/entry_points.txt", "[ocs_transfer]\nzipped = zipped_mod\n")
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    found: dict[str, Any] = {name: (value, dist) for name, value, dist in plugins.entry_points("ocs_transfer")}
    assert found["zipped"][0] == "zipped_mod"
    assert found["zipped"][1].version == "1.0"
