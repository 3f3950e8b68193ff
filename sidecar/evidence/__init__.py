"""Evidence: when a leak alert fires, the app's heap and goroutine profiles, and what grew.

Owns: pprof's profile.proto message definitions and decoding (``profile``), goroutine
dumps (``goroutines``), the growth report from the baseline to a capture (``report``),
bounded GETs of the app's pprof endpoints (``fetch``), a picture of the app fetched and
decoded from them (``pprof``), bundles on disk bounded by count and bytes (``bundles``),
the stage's metrics (``metrics``), and the stage that captures on alerts and on demand
and keeps the healthy baseline (``capture``).

May import: ``core``. Never ``scrape``, ``rules`` or ``actions``: it meets them only
through ``core`` values (``Alert``) and the supervisor's wiring.
"""
