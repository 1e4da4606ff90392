"""The input-side fuzz tests' budget and bounds (issue 19).

In the suite every fuzz test runs a fixed number of examples, derandomised,
so each run tries the same inputs. ``benchmarks/fuzz.py`` runs the same tests
longer, with a random seed, through two environment variables:

- ``OCS_TRANSFER_FUZZ_EXAMPLES``: examples per test (default: the test's own);
- ``OCS_TRANSFER_FUZZ_SEED``: a seed, which turns derandomisation off.

:func:`bounded` runs one input and fails when it needs more memory than a
bound (traced Python allocations); the time per input is measured by the
benchmark, not asserted in the suite.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

__all__ = ["MEMORY_BOUND", "bounded", "fuzz_settings"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Memory one input may take (peak of traced allocations): far below what the
#: inputs could make a careless reader allocate (a decompressed bomb, a
#: declared size), far above what reading a small header needs.
MEMORY_BOUND = 48 * 1024 * 1024


def fuzz_settings(examples: int) -> Callable[[F], F]:
    """Hypothesis settings for a fuzz test: ``examples`` in the suite
    (derandomised, no example database), or what the benchmark asks for."""
    count = int(os.environ.get("OCS_TRANSFER_FUZZ_EXAMPLES") or examples)
    chosen = os.environ.get("OCS_TRANSFER_FUZZ_SEED")
    applied = settings(
        max_examples=count, deadline=None, derandomize=chosen is None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )  # fmt: skip

    def decorate(test: F) -> F:
        decorated = applied(test)
        return seed(int(chosen))(decorated) if chosen is not None else decorated

    return decorate


def bounded(call: Callable[[], T], limit: int = MEMORY_BOUND) -> T:
    """``call()``, failing with AssertionError when its peak of traced memory
    passes ``limit``; whatever it raises is raised (after the check)."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        return call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if not tracing:
            tracemalloc.stop()
        assert peak - start < limit, f"one input took {peak - start} bytes of memory (bound {limit})"
