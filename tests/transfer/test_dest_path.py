"""`dest add --path ../../escape` is refused when it is entered, not at
`schedule` (issue 11, point 12), and so is an edit to such a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import unique_root
from .test_cli import Cli


@pytest.fixture(name="cli")
def _cli(tmp_path: Path, faulty_provider: None) -> Cli:
    return Cli(tmp_path)


@pytest.mark.parametrize("bad", ["../../escape", "night/../../x", "a/./b", "..\\x", "%2e%2e/x", "a/\x00b"])
def test_dest_add_refuses_a_path_leaving_the_destination(cli: Cli, bad: str) -> None:
    root = unique_root("p")
    result = cli("dest", "add", "esc", "--provider", "memory", "--option", f"root={root}", "--path", bad, ok=False)
    assert result.exit_code != 0
    assert "must be a folder inside the destination" in cli.outputs[-1]
    assert "no destinations" in cli("dest", "list").output
    cli("dest", "add", "fine", "--provider", "memory", "--option", f"root={root}", "--path", "/observatory//fits/")
    result = cli("dest", "edit", "fine", "--path", bad, ok=False)
    assert result.exit_code != 0 and "must be a folder inside the destination" in cli.outputs[-1]
    assert '"path": "/observatory//fits/"' in cli("dest", "show", "fine", "--json").output
