"""PromQL for the embedded rule engine: a documented subset of Prometheus 2.42, evaluated
as instant queries over the sidecar's series store.

    q = compile_expr('rate(cache_keys_total[10m]) > 500')
    q.evaluate(store, t_ms)          # Vector (list of Sample) or float

Parsing is promql-parser's, with what it accepts but 2.42 refuses refused from the text
(see ``parse``); the tree is compiled once into evaluator nodes (see ``compile``), so
evaluating a rule every few seconds re-does only the arithmetic. The
supported subset and what is left out are in ``docs/promql.md``.
"""

from __future__ import annotations

from functools import lru_cache

from sidecar.rules.promql.compile import compile_text
from sidecar.rules.promql.eval import SUBQUERY_STEP_MS, Ctx, Node
from sidecar.rules.promql.values import LOOKBACK_MS, PromQLError, Sample, Vector
from sidecar.store import StoreView

__all__ = [
    "LOOKBACK_MS",
    "SUBQUERY_STEP_MS",
    "PromQLError",
    "Query",
    "Sample",
    "Vector",
    "compile_expr",
    "query_vector",
    "refused_query",
    "unsupported_constructs",
]


class Query:
    """A compiled PromQL expression, evaluated as an instant query.

    A query keeps per-series bookkeeping between evaluations (matched series, staleness
    and counter-reset indexes), so evaluate one query from one thread at a time.
    """

    __slots__ = ("_root", "lookback_ms", "max_range_ms", "metric_names", "text")

    def __init__(self, text: str, lookback_ms: int = LOOKBACK_MS) -> None:
        compiled = compile_text(text)
        self.text = text
        """The expression as written (promql-parser's printer does not round-trip)."""
        self.max_range_ms = compiled.max_range_ms
        """The longest range plus offset any selector reads, in ms; 0 if none."""
        self.metric_names = compiled.metric_names
        """Metric names the query selects by name: what it needs data for."""
        self.lookback_ms = lookback_ms
        self._root = compiled.root

    @property
    def returns_scalar(self) -> bool:
        """True when the expression's type is scalar rather than instant vector."""
        return self._root.kind == "scalar"

    def evaluate(
        self, store: StoreView, t_ms: int, *, subquery_step_ms: int = SUBQUERY_STEP_MS
    ) -> Vector | float:
        """Evaluate at ``t_ms``: a list of ``Sample`` or, for a scalar expression, a float.

        ``subquery_step_ms`` is the step of a subquery that names none (``x[1h:]``): the
        global evaluation interval in Prometheus, ``evaluation_interval`` in promtool.

        Raises ``PromQLError`` (a ``RuleError``) for an evaluation error Prometheus would
        also raise, e.g. duplicate series on the "one" side of a match.
        """
        value = self._root.ev(Ctx(store, t_ms, self.lookback_ms, subquery_step_ms))
        if self._root.kind == "scalar":
            return float(value)
        return [Sample(labels, v) for labels, v in value]

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


class _Refused(Node):
    def __init__(self, error: PromQLError) -> None:
        self.error = error

    def ev(self, ctx: Ctx) -> object:
        raise PromQLError(self.error.message, expr=self.error.expr)


def refused_query(text: str, error: PromQLError) -> Query:
    """A ``Query`` for valid PromQL the evaluator cannot run: each evaluation raises
    ``error``, so its rule loads with the rest of its file and shows the reason as its
    health instead of stopping the sidecar."""
    q = Query.__new__(Query)
    q.text = text
    q.max_range_ms = 0
    q.metric_names = frozenset()
    q.lookback_ms = LOOKBACK_MS
    q._root = _Refused(error)  # the one other way to make a Query
    return q


def compile_expr(text: str, lookback_ms: int = LOOKBACK_MS) -> Query:
    """Compile ``text``; raise ``PromQLError`` for a syntax error or an unsupported construct.

    The error's ``constructs`` attribute names every unsupported construct found.
    """
    return Query(text, lookback_ms)


def unsupported_constructs(text: str) -> list[str]:
    """Every construct in ``text`` the evaluator does not support (empty if it compiles).

    A syntax error is raised as ``PromQLError``, not returned.
    """
    try:
        compile_text(text)
    except PromQLError as exc:
        if exc.constructs:
            return list(exc.constructs)
        raise
    return []


@lru_cache(maxsize=256)
def _cached(text: str) -> Query:
    return Query(text)


def query_vector(
    text: str, store: StoreView, t_ms: int, *, subquery_step_ms: int = SUBQUERY_STEP_MS
) -> Vector:
    """Evaluate ``text`` as promtool's ``promql_expr_test`` does: a scalar result becomes
    one sample without labels (``subquery_step_ms``: promtool's ``evaluation_interval``)."""
    value = _cached(text).evaluate(store, t_ms, subquery_step_ms=subquery_step_ms)
    if isinstance(value, float):
        return [Sample((), value)]
    return value
