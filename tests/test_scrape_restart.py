"""The scrape stage tells an app restart apart: counters going down, or down then up."""

from __future__ import annotations

import pytest

from sidecar.core.model import Snapshot, labelset
from sidecar.scrape.scraper import _restart

TOTAL = labelset({"__name__": "go_memstats_alloc_bytes_total"})
GCS = labelset({"__name__": "go_gc_cycles_total"})
HEAP = labelset({"__name__": "go_memstats_heap_alloc_bytes"})


def _snap(**values: float) -> Snapshot:
    names = {"total": TOTAL, "gcs": GCS, "heap": HEAP}
    return Snapshot(0, {names[k]: v for k, v in values.items()}, {}, 0)


@pytest.mark.parametrize(
    ("before", "now", "was_up", "why"),
    [
        (None, _snap(total=10), None, None),  # the first scrape knows no before
        (_snap(total=10, gcs=3), _snap(total=11, gcs=3), True, None),
        (_snap(total=10, heap=9), _snap(total=11, heap=1), True, None),  # a gauge may fall
        (_snap(total=10, gcs=3), _snap(total=4, gcs=3), True, "counter_reset"),
        (_snap(total=10, gcs=3), _snap(total=11, gcs=0), True, "counter_reset"),
        (_snap(total=10), _snap(gcs=0), True, None),  # a counter that vanished says nothing
        (_snap(total=10), _snap(total=11), False, "target_up_again"),
        (None, _snap(total=11), False, "target_up_again"),  # down since the sidecar started
    ],
)
def test_restart_is_a_counter_reset_or_the_target_back_up(
    before: Snapshot | None, now: Snapshot, was_up: bool | None, why: str | None
) -> None:
    """Only a monotonic runtime counter going down, or down-then-up, signals a restart."""
    assert _restart(before, now, was_up) == why
