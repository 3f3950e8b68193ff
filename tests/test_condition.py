"""The breaker's question before an automatic reset: cleared, on fresh data?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.config import RulesConfig
from sidecar.core.model import Alert, ScrapeFacts, fingerprint, labelset
from sidecar.rules.condition import Condition
from sidecar.rules.engine import RuleEngine
from sidecar.rules.files import load_rules
from sidecar.rules.groups import runtime_groups
from sidecar.store import Store

T0 = 1_800_000_000_000
ACTIVE = labelset({"__name__": "conn_pool_active"})
RULE = """
groups:
  - name: pool
    rules:
      - alert: PoolHigh
        expr: conn_pool_active > 90
        labels:
          action: circuit_break
"""
ALERT = Alert(
    status="resolved",
    labels={"alertname": "PoolHigh", "action": "circuit_break"},
    annotations={},
    starts_at=dt.datetime.fromtimestamp(T0 / 1000, tz=dt.UTC),
    fingerprint=fingerprint({"alertname": "PoolHigh", "action": "circuit_break"}),
)


@dataclass
class _Scrape:
    """The scraper's public facts, as the condition reads them."""

    last: ScrapeFacts = field(default_factory=lambda: ScrapeFacts(url="u", interval_s=15.0))
    interval: float = 15.0
    timeout_s: float = 5.0


async def _rig(tmp_path: Path) -> tuple[Condition, Store, RuleEngine, _Scrape, list[float]]:
    (tmp_path / "r.yml").write_text(RULE)
    store = Store(retention_ms=3_600_000, max_series=100)
    now = [T0 / 1000]

    async def send(_: list[Alert]) -> None:
        return None

    engine = RuleEngine(
        runtime_groups(load_rules([str(tmp_path / "r.yml")]), RulesConfig()),
        store,
        RulesConfig(),
        registry=CollectorRegistry(),
        send=send,
        state_dir=None,
        clock=lambda: now[0],
    )
    scrape = _Scrape()
    condition = Condition(scrape, store, engine.groups, clock=lambda: now[0])
    return condition, store, engine, scrape, now


async def _scrape(store: Store, engine: RuleEngine, scrape: _Scrape, t: int, value: float) -> None:
    store.ingest(t, {ACTIVE: value})
    scrape.last = ScrapeFacts(url="u", interval_s=15.0, up=True, time_ms=t)
    await engine.iterate(engine.groups[0], t)


async def test_cleared_only_when_fresh_data_says_the_rule_no_longer_matches(
    tmp_path: Path,
) -> None:
    """Firing: not cleared; back under the threshold on a fresh scrape: cleared."""
    condition, store, engine, scrape, now = await _rig(tmp_path)
    await _scrape(store, engine, scrape, T0, 95.0)
    assert condition.cleared(ALERT) is False
    await _scrape(store, engine, scrape, T0 + 15_000, 40.0)
    now[0] = (T0 + 15_000) / 1000
    assert condition.cleared(ALERT) is True


async def test_target_down_or_stale_data_is_never_cleared(tmp_path: Path) -> None:
    """A resolution caused by missing data is not a recovery."""
    condition, store, engine, scrape, now = await _rig(tmp_path)
    await _scrape(store, engine, scrape, T0, 40.0)
    now[0] = T0 / 1000
    assert condition.cleared(ALERT) is True
    # The target went away: the last scrape failed.
    scrape.last = ScrapeFacts(url="u", interval_s=15.0, up=False, time_ms=T0 + 15_000)
    now[0] = (T0 + 15_000) / 1000
    assert condition.cleared(ALERT) is False
    # Up, but the last good scrape is too old (two intervals plus the timeout).
    scrape.last = ScrapeFacts(url="u", interval_s=15.0, up=True, time_ms=T0)
    now[0] = (T0 + 35_001) / 1000
    assert condition.cleared(ALERT) is False
    # Up and fresh, but the series the rule reads vanished (stale): no data, no reset.
    store.ingest(T0 + 40_000, {})
    scrape.last = ScrapeFacts(url="u", interval_s=15.0, up=True, time_ms=T0 + 40_000)
    await engine.iterate(engine.groups[0], T0 + 40_000)
    now[0] = (T0 + 40_000) / 1000
    assert condition.cleared(ALERT) is False


async def test_unknown_alert_is_cleared_on_fresh_data(tmp_path: Path) -> None:
    """An alert only a fleet Prometheus evaluates: its resolution is trusted with fresh data."""
    condition, store, engine, scrape, _ = await _rig(tmp_path)
    await _scrape(store, engine, scrape, T0, 95.0)
    other = Alert(
        "resolved",
        {"alertname": "FleetOnly"},
        {},
        ALERT.starts_at,
        fingerprint=fingerprint({"alertname": "FleetOnly"}),
    )
    assert condition.cleared(other) is True
    scrape.last = ScrapeFacts(url="u", interval_s=15.0, up=False, time_ms=T0)
    assert condition.cleared(other) is False
