"""Rules: Prometheus rule files, evaluated on the store's history, alerts handed on.

Owns: the rule-file format (``rulefmt``), loading and checking rule files (``files``),
PromQL (``promql/``), the alert state machine (``alerting``) and its ``for`` state across
restarts (``forstate``), templates (``templates/``), the run-time groups a reload swaps
(``groups``), the engine that runs them on Prometheus's schedule (``engine``), handing
alerts on (``notify``), the breaker's "has it cleared?" question (``condition``), and
``promtool test rules`` (``unittest/``).

May import: ``store``, ``gocompat``, ``core``. Never ``scrape`` or ``actions``: alerts
leave as ``core.model.Alert`` through an injected ``send``.
"""
