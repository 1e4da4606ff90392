from __future__ import annotations

import re
from pathlib import Path

from ocs_transfer import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_hook_is_documented_with_a_heading() -> None:
    hooks = {name for name in dir(hookspecs) if name.startswith("ocs_transfer_")}
    documented = set(re.findall(r"^### `(ocs_transfer_\w+)\(", (DOCS / "plugins.md").read_text(), flags=re.M))
    assert hooks, "no hooks found"
    assert hooks - documented == set()
