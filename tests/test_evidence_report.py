"""Evidence reports: pprof profiles decoded per call site, goroutine dumps, growth."""

from __future__ import annotations

import gzip

import pytest

from sidecar.evidence import goroutines, profile, report

# Locations 1..4: runtime.mallocgc, runtime.mapassign_faststr, main.leakCache, main.main.
_FUNCS = ["runtime.mallocgc", "runtime.mapassign_faststr", "main.leakCache", "main.main"]


def _heap(samples: list[tuple[list[int], int, int]], *, gzipped: bool = True) -> bytes:
    """A heap profile with ``(location ids, inuse_objects, inuse_space)`` samples."""
    msg = profile._profile_class()()
    strings = ["", "inuse_objects", "count", "inuse_space", "bytes", *_FUNCS]
    msg.string_table.extend(strings)
    msg.sample_type.add(type=1, unit=2)
    msg.sample_type.add(type=3, unit=4)
    for i, _ in enumerate(_FUNCS, start=1):
        msg.function.add(id=i, name=4 + i)
        msg.location.add(id=i, line=[{"function_id": i, "line": 10 * i}])
    for locs, objects, space in samples:
        msg.sample.add(location_id=locs, value=[objects, space])
    raw = msg.SerializeToString()
    return gzip.compress(raw) if gzipped else raw


def _sites(data: bytes) -> profile.SiteValues:
    return profile.site_values(profile.decode(data, limit=1 << 20), report.HEAP_TYPES, max_frames=8)


def test_heap_values_are_summed_per_call_site_past_runtime_frames() -> None:
    """Runtime frames are skipped to the first caller, and samples of one stack add up."""
    sites = _sites(_heap([([1, 2, 3, 4], 2, 100), ([1, 2, 3, 4], 3, 50), ([1, 4], 1, 7)]))
    assert sites.types == ("inuse_space/bytes", "inuse_objects/count")
    assert dict(sites.sites) == {
        ("main.leakCache", "main.main"): (150, 5),
        ("main.main",): (7, 1),
    }


def test_an_uncompressed_profile_decodes_too() -> None:
    """Go serves gzip, but a plain profile.proto message is read the same way."""
    sites = _sites(_heap([([3], 1, 8)], gzipped=False))
    assert dict(sites.sites) == {("main.leakCache",): (8, 1)}


def test_a_profile_that_inflates_past_the_limit_is_refused() -> None:
    """A gzip bomb stops at the limit with a ProfileError, before it is held whole."""
    with pytest.raises(profile.ProfileError, match="inflates past 100 bytes"):
        profile.decode(gzip.compress(b"\0" * 10_000), limit=100)


def test_bytes_that_are_not_a_profile_are_a_profile_error() -> None:
    """Garbage behind a gzip header is named as a broken profile, never a crash."""
    with pytest.raises(profile.ProfileError, match="gzip stream is broken"):
        profile.decode(b"\x1f\x8bnot gzip at all", limit=1 << 20)


def test_a_profile_without_the_wanted_sample_types_is_refused() -> None:
    """A CPU profile handed in as a heap profile says which types it has."""
    msg = profile._profile_class()()
    msg.string_table.extend(["", "samples", "count"])
    msg.sample_type.add(type=1, unit=2)
    with pytest.raises(profile.ProfileError) as info:
        profile.site_values(msg, report.HEAP_TYPES, max_frames=8)
    assert str(info.value) == (
        "expected sample types ['inuse_space', 'inuse_objects'], the profile has ['samples']"
    )


DUMP = """goroutine profile: total 7
5 @ 0x43a0f6 0x4067ec 0x6e8b95 0x46ac41
#\t0x43a0f5\truntime.gopark+0xd5\t/usr/lib/go/src/runtime/proc.go:363
#\t0x4067eb\truntime.chanrecv1+0x2b\t/usr/lib/go/src/runtime/chan.go:442
#\t0x6e8b94\tmain.leakWorkers.func1+0x34\t/src/main.go:50

1 @ 0x43a0f6 0x46ac41
#\t0x43a0f5\truntime.gopark+0xd5\t/usr/lib/go/src/runtime/proc.go:363
#\t0x6e8c00\tmain.serve+0x20\t/src/main.go:80
#\t0x6e8d00\tmain.main+0x10\t/src/main.go:90

1 @ 0x46ac41
# labels: {"k":"v"}
#\t0x6e8e00\tmain.tick+0x10\t/src/main.go:99
"""


def test_goroutines_are_counted_per_stack_from_their_first_own_frame() -> None:
    """A debug=1 dump gives counts per stack, runtime frames cut, labels lines skipped."""
    dump = goroutines.parse(DUMP, max_frames=8)
    assert dump == goroutines.GoroutineDump(
        total=7,
        stacks={
            ("main.leakWorkers.func1",): 5,
            ("main.serve", "main.main"): 1,
            ("main.tick",): 1,
        },
        skipped=1,
    )


def test_text_that_is_not_a_goroutine_dump_is_refused() -> None:
    """A debug=2 dump (or an HTML page) is named as the wrong format."""
    with pytest.raises(profile.ProfileError) as info:
        goroutines.parse("goroutine 1 [running]:\nmain.main()\n", max_frames=8)
    assert str(info.value) == (
        "expected a goroutine dump starting 'goroutine profile: total N', "
        "got 'goroutine 1 [running]:'"
    )


def test_growth_ranks_sites_from_the_baseline_and_marks_new_ones() -> None:
    """Sites rank by bytes grown since the baseline; one the baseline lacked is new."""
    base_heap = _sites(_heap([([1, 4], 1, 1000)]))
    heap = _sites(_heap([([1, 4], 1, 1200), ([1, 2, 3, 4], 40, 64000)]))
    base_dump = goroutines.parse(DUMP, max_frames=8)
    dump = goroutines.parse(
        DUMP.replace("total 7", "total 52").replace("5 @", "50 @"), max_frames=8
    )
    rep = report.build(
        heap=heap,
        heap_baseline=base_heap,
        goroutines=dump,
        goroutines_baseline=base_dump,
        baseline_time="2026-12-03T08:00:00.000Z",
        top=10,
        problems=[],
    )
    assert rep.heap_inuse_bytes == 65200
    assert rep.heap_inuse_bytes_growth == 64200
    assert rep.heap == [
        report.HeapGrowth(
            "main.leakCache", ["main.leakCache", "main.main"], 64000, 64000, 40, 40, new=True
        ),
        report.HeapGrowth("main.main", ["main.main"], 1200, 200, 1, 0, new=False),
    ]
    assert rep.goroutines_total == 52
    assert rep.goroutines_growth == 45
    assert rep.goroutines == [
        report.GoroutineGrowth(
            "main.leakWorkers.func1", ["main.leakWorkers.func1"], 50, 45, new=False
        )
    ]
    assert report.render_text(rep) == (
        "Growth since the baseline of 2026-12-03T08:00:00.000Z\n"
        "\n"
        "Heap in use: 65200 bytes (+62.7KiB)\n"
        "      growth    objects  call site\n"
        "    +62.5KiB        +40  main.leakCache  [new]\n"
        "                           <- main.main\n"
        "       +200B         +0  main.main\n"
        "\n"
        "Goroutines: 52 (+45)\n"
        "      growth      count  stack\n"
        "         +45         50  main.leakWorkers.func1\n"
    )


def test_without_a_baseline_growth_is_from_zero_and_the_report_says_so() -> None:
    """No baseline: every site grows from nothing, none is marked new, the text says why."""
    rep = report.build(
        heap=_sites(_heap([([3], 2, 10)])),
        heap_baseline=None,
        goroutines=None,
        goroutines_baseline=None,
        baseline_time=None,
        top=1,
        problems=["goroutine: http://127.0.0.1:1/debug/pprof/goroutine answered 404"],
    )
    assert rep.heap == [
        report.HeapGrowth("main.leakCache", ["main.leakCache"], 10, 10, 2, 2, new=False)
    ]
    assert rep.goroutines_total is None
    assert report.render_text(rep).splitlines()[0] == (
        "Growth since the baseline of nothing (no healthy baseline yet: growth is from zero)"
    )
    assert report.render_text(rep).splitlines()[-1] == (
        "Not compared: goroutine: http://127.0.0.1:1/debug/pprof/goroutine answered 404"
    )
