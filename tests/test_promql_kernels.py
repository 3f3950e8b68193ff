"""The C range kernels (``_kernels.c``) give the Python kernels' bits on every window,
refuse what is not a window of the store's arrays with a clear error, and are what this
install runs."""

from __future__ import annotations

import math
import shlex
import struct
import subprocess
import sys
import sysconfig
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.rules.promql import native
from sidecar.rules.promql.rangefuncs import RANGE_KERNELS, Env
from sidecar.rules.promql.regression import linear_regression

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e12, max_value=1e12),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan]),
)

_FUNCS = [
    "avg_over_time",
    "sum_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "rate",  # its counter resets added up in C
    "increase",
]


def _bits(v: float) -> bytes:
    """A float's bits, with every NaN one NaN: Go's NaN payloads are not the contract."""
    return b"nan" if math.isnan(v) else struct.pack("<d", v)


def _python(fn: str, ts: array[int], vs: array[float], i: int, j: int, t0: int) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "kernels", None)
        return _call(fn, ts, vs, i, j, t0)


def _call(fn: str, ts: array[int], vs: array[float], i: int, j: int, t0: int) -> object:
    if fn == "regression":
        slope, intercept = linear_regression(ts, vs, i, j, t0, cache={})
        return _bits(slope), _bits(intercept)
    # A 10 s range ending at the last sample, as a selector would read it.
    env = Env(ts[j - 1], ts[j - 1] - 10_000, ts[j - 1], 10.0, [])
    out = RANGE_KERNELS[fn](ts, vs, i, j, env)
    assert out is not None
    return _bits(out)


def test_this_install_built_the_c_kernels() -> None:
    """The tests' install compiled the extension: a silent fallback to Python would leave
    the rule loop five times slower and this suite passing."""
    assert native.kernels is not None
    assert native.range_kernels() == "c"
    assert Path(native.kernels.__file__).name.startswith("_kernels.cpython-")
    assert Path(native.kernels.__file__).suffix == ".so"


def test_the_c_source_compiles_without_a_warning() -> None:
    """The kernels compile with every common warning as an error, by the compiler and
    against the headers that build this Python's extensions."""
    source = Path(native.__file__).with_name("_kernels.c")
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    flags = ["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
    done = subprocess.run(
        [*cc, *flags, f"-I{include}", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_an_install_without_the_c_build_runs_the_python_kernels() -> None:
    """Where the extension was not built, importing the evaluator still works, the
    kernels are the Python ones, and a rule over the store gives the same value."""
    code = (
        "import sys\n"
        "sys.modules['sidecar.rules.promql._kernels'] = None  # as if never built\n"
        "from sidecar.rules.promql import native, query_vector\n"
        "from tests.promql_support import load\n"
        "store = load({'g': '1 2 4 8 16 32'}, 1_000)\n"
        "value = query_vector('avg_over_time(g[1m])', store, 5_000)[0].value\n"
        "print(native.kernels, native.range_kernels(), value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "None python 10.5\n"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 90_000), _values), min_size=2, max_size=80),
    st.data(),
)
def test_c_kernels_give_the_python_kernels_bits(
    window: list[tuple[int, float]], data: st.DataObject
) -> None:
    """Any sub-window of any values, infinities, NaN, signed zeros, subnormals and values
    near overflow among them: each function's C result has the Python result's bits."""
    t, stamps = 1_700_000_000_000, []
    for gap, _ in window:
        t += gap
        stamps.append(t)
    ts, vs = array("q", stamps), array("d", [v for _, v in window])
    i = data.draw(st.integers(0, len(vs) - 2))
    j = data.draw(st.integers(i + 2, len(vs)))
    t0 = data.draw(st.sampled_from([ts[i], ts[j - 1] + 250, ts[i] - 10**12]))
    for fn in [*_FUNCS, "regression"]:
        assert _call(fn, ts, vs, i, j, t0) == _python(fn, ts, vs, i, j, t0), fn


def test_long_windows_of_one_sign_match_too() -> None:
    """900 noisy gauge samples, the shape whose Python kernels take the math.fsum paths:
    the C kernels agree with them on every function, for both intercept times."""
    ts = array("q", [1_700_000_000_000 + k * 1_000 + (k * 7) % 13 for k in range(900)])
    vs = array("d", [1.1 + math.sin(k) ** 2 * 1e3 / 7 for k in range(900)])
    for fn in [*_FUNCS, "regression"]:
        for t0 in (ts[0], ts[-1] + 250):
            assert _call(fn, ts, vs, 0, 900, t0) == _python(fn, ts, vs, 0, 900, t0), fn


def test_windows_that_are_not_arrays_take_the_python_kernels() -> None:
    """A subquery's values are a list: the kernels answer it in Python, with the C
    result for the same numbers."""
    ts = array("q", [1_000 * k for k in range(50)])
    vs = [math.sin(k) * 1e3 for k in range(50)]
    env = Env(49_000, 0, 0, 1.0, [])
    for fn in _FUNCS:
        assert RANGE_KERNELS[fn](ts, vs, 3, 40, env) == RANGE_KERNELS[fn](
            ts, array("d", vs), 3, 40, env
        )
    got = linear_regression(ts, vs, 3, 40, 500, cache={})
    assert got == linear_regression(ts, array("d", vs), 3, 40, 500, cache={})


def test_the_c_kernels_refuse_what_is_not_a_window() -> None:
    """Another array type, a range outside the array, an empty window or a list: a
    TypeError or IndexError that says what was expected, never a read past the end, and
    the arrays released."""
    c = native.kernels
    assert c is not None
    vs = array("d", [1.0, 2.0, 3.0])
    ts = array("q", [1, 2, 3])
    with pytest.raises(TypeError, match=r"^expected a buffer of format 'd' \(an array\('d'\)\)$"):
        c.avg_over_time(array("f", [1.0, 2.0]), 0, 2)
    with pytest.raises(TypeError, match=r"^expected a buffer of format 'q' \(an array\('q'\)\)$"):
        c.linear_regression(array("i", [1, 2, 3]), vs, 0, 3, 0)
    with pytest.raises(TypeError, match=r"^expected a buffer of format 'd' \(an array\('d'\)\)$"):
        c.linear_regression(ts, array("q", [1, 2, 3]), 0, 3, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'list'"):
        c.sum_over_time([1.0, 2.0], 0, 2)  # type: ignore[arg-type]
    msg = r"^window \[{}, {}\) is empty or not within the 3 items$"
    for i, j in ((0, 4), (-1, 2), (2, 2), (3, 1)):
        with pytest.raises(IndexError, match=msg.format(i, j)):
            c.stdvar_over_time(vs, i, j)
        with pytest.raises(IndexError, match=msg.format(i, j)):
            c.linear_regression(ts, vs, i, j, 0)
    with pytest.raises(IndexError, match=msg.format(0, 3).replace("3 items", "2 items")):
        c.linear_regression(ts, array("d", [1.0, 2.0]), 0, 3, 0)
    with pytest.raises(TypeError, match=r"must be real number, not str"):
        c.add_counter_resets(vs, 0, 3, "1")  # type: ignore[arg-type]  # on purpose
    # Every refusal released the arrays it had opened: the store appends to them after
    # each scrape, which an export left behind would turn into a BufferError.
    vs.append(4.0)
    ts.append(4)
    assert c.avg_over_time(vs, 0, 3) == 2.0
    assert c.add_counter_resets(array("d", [5.0, 1.0, 4.0, 2.0, 3.0]), 0, 5, 0.5) == 9.5
    assert c.linear_regression(array("q", [1_000, 2_000, 3_000]), vs, 0, 3, 1_000) == (1.0, 1.0)
