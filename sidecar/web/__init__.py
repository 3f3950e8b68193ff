"""Web: the sidecar's HTTP face. The only stage that imports ``aiohttp.web`` (but the
admission webhook's server, ``injector.server``, which is built on this one).

Owns: the server, its auth and size-limit middleware and probes (``server``), POST
/alerts (``alerts_api``), the operator API (``actions_api``), the Prometheus-shaped rule
and alert API (``rules_api``) and the status page (``status``, ``status_view``,
``status_render``, ``svgchart``).

May import: ``scrape``, ``rules``, ``actions``, ``store``, ``gocompat``, ``core``.
"""
