"""An example ocs_transfer plugin: the ``scratch`` provider.

It keeps objects in the process's memory (like the built-in ``memory``
provider) under its own name and URL scheme, so ``ocs-transfer plugins`` lists
it and ``get_store("scratch://run-1")`` builds it. Copy this package to start a
real provider: replace the store class, keep the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from ocs_transfer import hookimpl
from ocs_transfer.storage.memory import MemoryStore

__all__ = ["ScratchStore"]


class ScratchStore(MemoryStore):
    """Objects in memory, under the name ``scratch``."""

    name: ClassVar[str] = "scratch"
    schemes: ClassVar[tuple[str, ...]] = ("scratch",)


@hookimpl
def ocs_transfer_register_providers(register: Callable[[Any], None]) -> None:
    register(ScratchStore)
