"""Operators, vector matching, aggregations and instant-vector functions of the evaluator."""

from __future__ import annotations

import math

import pytest
from promql_support import load, values

from sidecar.rules.promql import PromQLError, Sample, query_vector
from sidecar.store import Store

M = 60_000


@pytest.fixture
def store() -> Store:
    """Requests per (job, instance), pool limits per job, a gauge with a name clash."""
    return load(
        {
            'req{job="api",instance="1"}': "10",
            'req{job="api",instance="2"}': "30",
            'req{job="db",instance="1"}': "5",
            'limit{job="api",tier="gold"}': "100",
            'limit{job="db",tier="iron"}': "10",
            'other{job="api",instance="1"}': "1",
        }
    )


def test_arithmetic_with_a_scalar_drops_the_name(store: Store) -> None:
    """req * 2 doubles each value and drops __name__."""
    assert values('req{job="api"} * 2', store) == {
        "instance=1,job=api": 20.0,
        "instance=2,job=api": 60.0,
    }


def test_scalar_on_the_left_of_a_comparison_keeps_the_vector_value(store: Store) -> None:
    """20 < req filters, keeping the element (name and value) as it was."""
    assert values("20 < req", store) == {"__name__=req,instance=2,job=api": 30.0}


def test_comparison_with_bool_gives_zero_or_one_without_name(store: Store) -> None:
    """req > bool 8 keeps every element, valued 0 or 1, name dropped."""
    assert values("req > bool 8", store) == {
        "instance=1,job=api": 1.0,
        "instance=2,job=api": 1.0,
        "instance=1,job=db": 0.0,
    }


def test_scalar_comparisons_need_bool() -> None:
    """1 < bool 2 is 1; the parser rejects a scalar comparison without bool."""
    empty = Store(retention_ms=M, max_series=1)
    assert query_vector("1 < bool 2", empty, 0) == [Sample((), 1.0)]
    with pytest.raises(PromQLError, match="comparisons between scalars must use BOOL modifier"):
        query_vector("1 < 2", empty, 0)


def test_one_to_one_matching_on_labels_keeps_only_those_labels(store: Store) -> None:
    """a / on(job, instance) b matches by those labels and keeps only them."""
    assert values("other / on(job, instance) req", store) == {"instance=1,job=api": 0.1}


def test_one_to_one_ignoring_removes_ignored_labels(store: Store) -> None:
    """Default matching compares all labels but the name."""
    assert values("req - other", store) == {"instance=1,job=api": 9.0}
    assert values('req{instance="1"} - ignoring(instance) limit{job="db"}', store) == {}


def test_group_left_copies_labels_from_the_one_side(store: Store) -> None:
    """req / on(job) group_left(tier) limit divides every instance by its job's limit."""
    assert values("req / on(job) group_left(tier) limit", store) == {
        "instance=1,job=api,tier=gold": 0.1,
        "instance=2,job=api,tier=gold": 0.3,
        "instance=1,job=db,tier=iron": 0.5,
    }


def test_group_right_keeps_the_right_labels_and_left_value_on_filter(store: Store) -> None:
    """limit > on(job) group_right req keeps req's labels with limit's value."""
    assert values("limit > on(job) group_right req", store) == {
        "__name__=req,instance=1,job=api": 100.0,
        "__name__=req,instance=2,job=api": 100.0,
        "__name__=req,instance=1,job=db": 10.0,
    }


def test_many_to_one_without_group_modifier_is_an_error(store: Store) -> None:
    """Two left elements matching one right element need group_left."""
    with pytest.raises(
        PromQLError, match=r"multiple matches for labels: many-to-one matching must be explicit"
    ):
        query_vector("req / on(job) limit", store, 0)


def test_duplicate_series_on_the_one_side_is_an_error(store: Store) -> None:
    """The right side of group_left must be unique per match group."""
    with pytest.raises(PromQLError) as err:
        query_vector("limit / on(job) group_left req", store, 0)
    assert str(err.value) == (
        'found duplicate series for the match group {job="api"} on the right hand-side of the '
        'operation: [{__name__="req", instance="2", job="api"}, {__name__="req", instance="1", '
        'job="api"}];many-to-many matching not allowed: matching labels must be unique on one side'
    )


def test_set_operators(store: Store) -> None:
    """and keeps matches, unless keeps non-matches, or adds unmatched right elements."""
    assert values('req and on(job) limit{tier="iron"}', store) == {
        "__name__=req,instance=1,job=db": 5.0
    }
    assert values('req unless on(job) limit{tier="iron"}', store) == {
        "__name__=req,instance=1,job=api": 10.0,
        "__name__=req,instance=2,job=api": 30.0,
    }
    assert values('other or req{job="db"}', store) == {
        "__name__=other,instance=1,job=api": 1.0,
        "__name__=req,instance=1,job=db": 5.0,
    }
    assert values("other or on(instance) req", store) == {
        "__name__=other,instance=1,job=api": 1.0,
        "__name__=req,instance=2,job=api": 30.0,
    }


def test_same_labelset_after_dropping_the_name_is_an_error(store: Store) -> None:
    """{__name__=~"req|other"} * 1 would hold two elements {instance=1, job=api}."""
    with pytest.raises(PromQLError, match=r"^vector cannot contain metrics with the same labelset"):
        query_vector('{__name__=~"req|other", instance="1", job="api"} * 1', store, 0)


def test_aggregations_by_and_without(store: Store) -> None:
    """sum by job, count without instance, avg, min, max, group."""
    assert values("sum by (job) (req)", store) == {"job=api": 40.0, "job=db": 5.0}
    assert values("count without (instance) (req)", store) == {"job=api": 2.0, "job=db": 1.0}
    assert values("avg(req)", store) == {"": 15.0}
    assert values("min(req)", store) == {"": 5.0}
    assert values("max by (job) (req)", store) == {"job=api": 30.0, "job=db": 5.0}
    assert values("group by (job) (req)", store) == {"job=api": 1.0, "job=db": 1.0}
    assert values("sum by (__name__) (req)", store) == {"__name__=req": 45.0}


def test_stddev_stdvar_quantile(store: Store) -> None:
    """Population variance of 10, 30, 5 and the interpolated quantile."""
    mean, count, value = 10.0, 1, 0.0
    for v in (30.0, 5.0):
        count += 1
        delta = v - mean
        mean += delta / count
        value += delta * (v - mean)
    assert values("stdvar(req)", store) == {"": value / 3}
    assert values("stddev(req)", store) == {"": math.sqrt(value / 3)}
    assert values("quantile(0.5, req)", store) == {"": 10.0}
    assert values("quantile(0.75, req)", store) == {"": 10.0 * 0.5 + 30.0 * 0.5}
    assert values("quantile(2, req)", store) == {"": math.inf}


def test_topk_bottomk_and_k_errors(store: Store) -> None:
    """topk/bottomk keep input labels; k below 1 gives nothing; NaN k is an error."""
    assert values("topk(1, req)", store) == {"__name__=req,instance=2,job=api": 30.0}
    assert values("bottomk by (job) (1, req)", store) == {
        "__name__=req,instance=1,job=api": 10.0,
        "__name__=req,instance=1,job=db": 5.0,
    }
    assert values("topk(0, req)", store) == {}
    with pytest.raises(PromQLError, match=r"^Scalar value NaN overflows int64$"):
        query_vector("topk(scalar(nothing), req)", store, 0)


def test_count_values_formats_like_go() -> None:
    """count_values labels values with Go's shortest 'f' formatting."""
    store = load({'x{a="1"}': "2", 'x{a="2"}': "2", 'x{a="3"}': "1e21", 'x{a="4"}': "0.5"})
    assert values('count_values("v", x)', store) == {
        "v=2": 2.0,
        "v=1000000000000000000000": 1.0,
        "v=0.5": 1.0,
    }
    with pytest.raises(PromQLError, match=r'^invalid label name "1v"$'):
        query_vector('count_values("1v", x)', store, 0)


def test_math_functions_follow_go() -> None:
    """abs, ceil, floor, round (with to_nearest), sqrt, exp, ln, log2, log10, clamp; the
    expected transcendental values are what Go 1.19 prints on amd64."""
    g = load({"g": "-2.5"})
    assert values("abs(g)", g) == {"": 2.5}
    assert values("ceil(g)", g) == {"": -2.0}
    assert values("floor(g)", g) == {"": -3.0}
    assert values("round(g)", g) == {"": -2.0}
    assert values("round(g, 2)", g) == {"": -2.0}
    assert math.isnan(values("sqrt(g)", g)[""])
    assert values("exp(-g)", g) == {"": 12.182493960703473}
    assert values("ln(-g)", g) == {"": 0.9162907318741551}
    assert values("log2(-g)", g) == {"": 1.3219280948873622}
    assert values("log10(-g)", g) == {"": 0.3979400086720376}
    assert values("clamp(g, -1, 1)", g) == {"": -1.0}
    assert values("clamp(g, 1, -1)", g) == {}
    assert values("clamp_min(g, 0)", g) == {"": 0.0}
    assert values("clamp_max(g, -3)", g) == {"": -3.0}
    assert values("g % 2", g) == {"": -0.5}
    assert values("g / 0", g) == {"": -math.inf}
    assert values("2 ^ 0.5", g) == {"": 1.4142135623730951}


def test_label_replace_and_label_join() -> None:
    """label_replace expands $1 and ${name}; no match leaves the labels; join skips empties."""
    store = load({'x{src="ab-12",other="z"}': "1"})
    assert values(
        'label_replace(x, "dst", "$1/${num}", "src", "(\\\\w+)-(?P<num>\\\\d+)")', store
    ) == {"__name__=x,dst=ab/12,other=z,src=ab-12": 1.0}
    assert values('label_replace(x, "dst", "$1", "src", "nomatch")', store) == {
        "__name__=x,other=z,src=ab-12": 1.0
    }
    assert values('label_replace(x, "other", "", "src", ".*")', store) == {
        "__name__=x,src=ab-12": 1.0
    }
    assert values('label_join(x, "j", "+", "other", "missing", "src")', store) == {
        "__name__=x,j=z++ab-12,other=z,src=ab-12": 1.0
    }
    with pytest.raises(
        PromQLError, match=r"^invalid destination label name in label_replace\(\): 1x$"
    ):
        query_vector('label_replace(x, "1x", "", "src", "")', store, 0)
    with pytest.raises(PromQLError, match=r"^invalid regular expression in label_replace\(\): \($"):
        query_vector('label_replace(x, "d", "", "src", "(")', store, 0)


def test_vector_scalar_time_and_dates() -> None:
    """vector(), scalar(), time() and the UTC date functions."""
    store = load({'x{a="1"}': "1", 'x{a="2"}': "2"})
    assert math.isnan(values("scalar(x)", store)[""])  # two elements
    assert values('scalar(x{a="2"})', store) == {"": 2.0}
    assert values("vector(3)", store) == {"": 3.0}
    t = 1_709_251_200_000  # 2024-03-01T00:00:00Z, a leap year
    assert values("year()", store, t) == {"": 2024.0}
    assert values("month()", store, t) == {"": 3.0}
    assert values("day_of_week()", store, t) == {"": 5.0}
    assert values("day_of_year()", store, t) == {"": 61.0}
    assert values("days_in_month(vector(1707000000))", store, t) == {"": 29.0}
    assert values("hour(vector(3600 * 5 + 59))", store) == {"": 5.0}
    assert values("minute(vector(125))", store) == {"": 2.0}


def test_sort_orders_by_value_with_nan_last() -> None:
    """sort ascends and sort_desc descends; NaN goes last in both."""
    store = load({'x{a="1"}': "3", 'x{a="2"}': "NaN", 'x{a="3"}': "1"})
    assert [s.labels[1][1] for s in query_vector("sort(x)", store, 0)] == ["3", "1", "2"]
    assert [s.labels[1][1] for s in query_vector("sort_desc(x)", store, 0)] == ["1", "3", "2"]


def test_unary_minus_and_precedence() -> None:
    """-x drops the name; 2 ^ 3 ^ 2 is right-associative; * binds tighter than +."""
    store = load({"x": "4"})
    assert values("-x", store) == {"": -4.0}
    assert values("2 ^ 3 ^ 2", store) == {"": 512.0}
    assert values("1 + 2 * 3 - 4 / 2", store) == {"": 5.0}
    assert values("-x + 1", store) == {"": -3.0}


def test_avg_is_the_incremental_mean_in_series_order() -> None:
    """avg adds v/n - mean/n per element, in the order the series were created."""
    store = load({'x{a="1"}': "2.4", 'x{a="2"}': "5.4", 'x{a="3"}': "3.7"})
    mean = 2.4
    for n, v in ((2, 5.4), (3, 3.7)):
        mean = mean + (v / n - mean / n)
    assert mean == 3.833333333333334  # (v - mean) / n would give ...335
    assert values("avg(x)", store) == {"": mean}


def test_bool_comparison_checks_for_clashing_labelsets(store: Store) -> None:
    """Dropping the name in a bool comparison can make two elements equal: an error."""
    with pytest.raises(PromQLError, match=r"^vector cannot contain metrics with the same labelset"):
        query_vector('{__name__=~"req|other", instance="1", job="api"} > bool 1', store, 0)


def test_min_and_max_replace_a_leading_nan() -> None:
    """A NaN that comes first is replaced by any later number, as Prometheus does."""
    store = load({'x{a="1"}': "NaN", 'x{a="2"}': "3", 'x{a="3"}': "-1"})
    assert values("max(x)", store) == {"": 3.0}
    assert values("min(x)", store) == {"": -1.0}


def test_atan2_keeps_the_metric_name() -> None:
    """atan2 is y atan2 x as in Go's math.Atan2(y, x), and (in 2.42) keeps __name__."""
    store = load({"x": "1"})
    assert values("x atan2 2", store) == {"__name__=x": math.atan2(1.0, 2.0)}
    assert values("2 atan2 x", store) == {"__name__=x": math.atan2(2.0, 1.0)}


def test_last_over_time_keeps_names_so_a_later_drop_is_checked() -> None:
    """last_over_time over two metrics keeps both names; negating clashes them."""
    store = load({'a{i="1"}': "1", 'b{i="1"}': "2"})
    assert values('last_over_time({__name__=~"a|b"}[1m])', store) == {
        "__name__=a,i=1": 1.0,
        "__name__=b,i=1": 2.0,
    }
    with pytest.raises(PromQLError, match=r"^vector cannot contain metrics with the same labelset"):
        query_vector('-last_over_time({__name__=~"a|b"}[1m])', store, 0)
