"""The C range kernels (``_kernels.c``), or ``None`` where the install built none.

The extension is optional (pyproject.toml): an install without a C compiler goes on, and
the range functions then run as Python, with the same results. The kernels read the
store's own ``array('d')``/``array('q')`` windows; any other window (a subquery's list, a
window copied around a staleness marker) takes the Python code. ``sidecar.started`` and
``leak_sidecar_build_info`` say which of the two runs (``range_kernels``).

Tests set ``kernels`` to ``None`` to run the evaluator on the Python code alone.
"""

from __future__ import annotations

__all__ = ["kernels", "range_kernels"]

try:
    from sidecar.rules.promql import _kernels as kernels
except ImportError:  # an install without a C compiler
    kernels = None  # type: ignore[assignment]  # mypy reads the stub; the build may lack it


def range_kernels() -> str:
    """``"c"`` where the C kernels run, ``"python"`` where this install has none."""
    return "python" if kernels is None else "c"
