"""Hostile input against the real command: at least 300 generated requests, none of them
answered 5xx, the process never dies, the app never called, the memory bounded.

The classes of issue 9 (finding 7, 9 and 11): bodies that are not JSON, payloads of
every wrong shape and type, times Python cannot hold, floods of alerts and keys,
Authorization headers that are not UTF-8, compressed bodies that do not decode,
Content-Length that lies, manual API bodies with loose types, garbage request lines.
No generated alert carries an ``action`` label and no manual body is valid, so that
any call at the app is a bug.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_support import TOKEN, LiveSidecar, StubApp, http, live_sidecar, request, stub_app

from sidecar.core.validation import Model, decode_json
from sidecar.web.actions_api import BreakRequest, FlushRequest, ResetRequest

pytestmark = pytest.mark.integration

AUTH = f"Bearer {TOKEN}".encode()
JSON = b"application/json"
RSS_GROWTH_LIMIT = 64 * 1024 * 1024
"""What the whole suite may add to the sidecar's resident memory."""

results: list[int | None] = []
"""The status of every generated request (None: closed without an answer)."""


@pytest.fixture(scope="module")
def app() -> Iterator[StubApp]:
    with stub_app() as stub:
        yield stub


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, app: StubApp) -> Iterator[LiveSidecar]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    # Short timeouts: a request that never ends (blank lines only, a lying Content-Length)
    # is cut off by the sidecar well within the client's 10s.
    with live_sidecar(workdir, app.url, header_timeout="2s", body_timeout="2s") as live:
        yield live


@pytest.fixture(scope="module")
def baseline_rss(sidecar: LiveSidecar) -> int:
    return sidecar.rss_bytes()


# -- strategies ------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2023-11-14T22:00:00Z",
            "2023-11-14T22:00:00",
            "2023-13-40T25:61:61Z",
            "2023-11-14T22:00:00+24:00",
            "",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    _json_leaf,
)
_labels = st.one_of(
    st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda k: k != "action"),
        st.text(max_size=40),
        max_size=5,
    ),
    _json,
)
_alert = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.sampled_from(["firing", "resolved", "pending"]), _json_leaf),
        "labels": _labels,
        "annotations": _labels,
        "startsAt": _times,
        "endsAt": _times,
        "generatorURL": _json_leaf,
        "fingerprint": st.one_of(st.text(max_size=20), st.sampled_from(["0123456789abcdef"])),
    },
)
_payload = st.fixed_dictionaries(
    {
        "version": st.one_of(st.sampled_from(["4", "3", 4]), _json_leaf),
        "alerts": st.one_of(st.lists(_alert, max_size=6), _json),
    },
    optional={
        "truncatedAlerts": _json_leaf,
        "groupKey": _json_leaf,
        "status": _json_leaf,
        "commonLabels": _json,
    },
)


@st.composite
def _webhook(draw: st.DrawFn) -> bytes:
    body = json.dumps(draw(_payload)).encode()
    return http("POST", "/alerts", body, {"Content-Type": JSON, "Authorization": AUTH})


@st.composite
def _raw_body(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=2000))
    ctype = draw(st.sampled_from([JSON, b"text/plain", b"application/json; charset=latin-1", b""]))
    return http("POST", "/alerts", body, {"Content-Type": ctype, "Authorization": AUTH})


@st.composite
def _authorization(draw: st.DrawFn) -> bytes:
    # Any bytes but the line breaks that would end the header.
    value = draw(st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
    scheme = draw(st.sampled_from([b"Bearer ", b"bearer ", b"Basic ", b""]))
    path = draw(st.sampled_from(["/alerts", "/v1/circuit/break", "/v1/cache/flush"]))
    body = json.dumps({"version": "4", "alerts": []}).encode()
    return http("POST", path, body, {"Content-Type": JSON, "Authorization": scheme + value})


@st.composite
def _encoded(draw: st.DrawFn) -> bytes:
    encoding = draw(st.sampled_from([b"deflate", b"gzip", b"br", b"zstd", b"x-unknown"]))
    valid = json.dumps({"version": "4", "alerts": []}).encode()
    body = draw(
        st.one_of(
            st.binary(max_size=500),
            st.just(zlib.compress(valid)[:-4]),  # cut short
            st.just(gzip.compress(valid)[:10]),
        )
    )
    headers = {"Content-Type": JSON, "Authorization": AUTH, "Content-Encoding": encoding}
    return http("POST", "/alerts", body, headers)


@st.composite
def _lying_length(draw: st.DrawFn) -> bytes:
    body = json.dumps({"version": "4", "alerts": []}).encode()
    length = draw(st.sampled_from([10**12, 2**63, 1024 * 1024 + 1, len(body) - 5, 0]))
    headers = {"Content-Type": JSON, "Authorization": AUTH}
    return http("POST", "/alerts", body, headers, content_length=length)


_MANUAL: dict[str, type[Model]] = {
    "/v1/circuit/break": BreakRequest,
    "/v1/circuit/reset": ResetRequest,
    "/v1/cache/flush": FlushRequest,
}


@st.composite
def _manual(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(sorted(_MANUAL)))
    value: Any = draw(
        st.one_of(
            _json,
            st.fixed_dictionaries(
                {}, optional={"reason": _json_leaf, "hold": st.one_of(_json_leaf, st.just("yes"))}
            ),
        )
    )
    body = json.dumps(value).encode()
    try:
        decode_json(body, _MANUAL[path])
    except msgspec.DecodeError:
        pass
    else:  # a valid request would act: make it invalid
        body = json.dumps({"reason": "x", "unexpected": value}).encode()
    return http("POST", path, body, {"Content-Type": JSON, "Authorization": AUTH})


@st.composite
def _anything(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]))
    path = "/" + draw(
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30)
    )
    return http(method, path)


_garbage = st.binary(min_size=1, max_size=300).map(lambda b: b + b"\r\n\r\n")

CASES = st.one_of(
    _webhook(), _raw_body(), _authorization(), _encoded(), _lying_length(), _manual(),
    _anything(), _garbage,
)  # fmt: skip


# -- the suite ---------------------------------------------------------------------------


@settings(
    max_examples=360,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=CASES)
def test_no_hostile_request_gets_a_5xx(sidecar: LiveSidecar, baseline_rss: int, raw: bytes) -> None:
    """Whatever comes, the answer is below 500 (or the connection is closed unanswered)."""
    status, body = request(sidecar.port, raw)
    results.append(status)
    assert status is None or status < 500, (raw[:300], body[:300])
    assert sidecar.proc.poll() is None, "the sidecar died"


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        (
            "340000-empty-alerts",
            http(
                "POST",
                "/alerts",
                b'{"version":"4","alerts":[' + b",".join([b"{}"] * 340_000) + b"]}",
                {"Content-Type": JSON, "Authorization": AUTH},
            ),
            422,
        ),
        (
            "90000-unknown-keys",
            http(
                "POST",
                "/v1/circuit/break",
                json.dumps({f"k{i}": 1 for i in range(90_000)}, separators=(",", ":")).encode(),
                {"Content-Type": JSON, "Authorization": AUTH},
            ),
            422,
        ),
        (
            "out-of-range-date",
            http(
                "POST",
                "/alerts",
                json.dumps(
                    {
                        "version": "4",
                        "alerts": [
                            {
                                "status": "firing",
                                "labels": {"alertname": "A"},
                                "startsAt": "0001-01-01T00:00:00+00:01",
                            }
                        ],
                    }
                ).encode(),
                {"Content-Type": JSON, "Authorization": AUTH},
            ),
            422,
        ),
        (
            "nested-100000-deep",
            http(
                "POST",
                "/alerts",
                b'{"version":"4","alerts":[{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
                {"Content-Type": JSON, "Authorization": AUTH},
            ),
            422,
        ),
        (
            "non-utf8-authorization",
            http(
                "POST",
                "/alerts",
                b"{}",
                {"Content-Type": JSON, "Authorization": b"Bearer \xff\xfe"},
            ),
            401,
        ),
        (
            "invalid-deflate",
            http(
                "POST",
                "/alerts",
                b"not deflate",
                {"Content-Type": JSON, "Authorization": AUTH, "Content-Encoding": b"deflate"},
            ),
            400,
        ),
        (
            "content-length-10^12",
            http(
                "POST",
                "/alerts",
                b"{",
                {"Content-Type": JSON, "Authorization": AUTH},
                content_length=10**12,
            ),
            413,
        ),
    ],
)
def test_the_findings_get_their_small_4xx(
    sidecar: LiveSidecar, baseline_rss: int, name: str, raw: bytes, expected: int
) -> None:
    """Each request of the issue's findings: its 4xx, a small body, the process alive."""
    status, body = request(sidecar.port, raw)
    results.append(status)
    assert status == expected, (name, body[:300])
    assert len(body) < 4096, (name, len(body))
    assert sidecar.proc.poll() is None


def test_after_the_suite_the_sidecar_is_alive_bounded_and_never_called_the_app(
    sidecar: LiveSidecar, app: StubApp, baseline_rss: int
) -> None:
    """At least 300 requests ran; none was 5xx; the app got no call; memory stayed bounded;
    /healthz answers; every refusal of /alerts is counted by code."""
    assert len(results) >= 300, len(results)
    assert all(s is None or s < 500 for s in results)
    assert sidecar.proc.poll() is None
    assert app.actions() == []
    growth = sidecar.rss_bytes() - baseline_rss
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB"
    status, _ = request(sidecar.port, http("GET", "/healthz"))
    assert status == 200
    status, metrics = request(sidecar.port, http("GET", "/metrics"))
    assert status == 200
    counted = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("leak_sidecar_webhook_requests_total{")
    ]
    codes = {line.split('"')[1] for line in counted}
    assert {"401", "413", "422"} <= codes, codes
    assert not any(c.startswith("5") for c in codes), codes
