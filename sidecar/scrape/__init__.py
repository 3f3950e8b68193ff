"""Scrape: the app's expvar endpoint, read into the store and exported on /metrics.

Owns: the scrape loop (``scraper``) and its own metrics (``metrics``), bounded GETs of
the endpoint (``fetch``), decoding and flattening an expvar body under caps
(``flatten``, with cheap JSON looks in ``jsonscan``), metric relabelling (``relabel``),
Go's memstats under client_golang's names (``memstats``), and the /metrics collector
over the store (``export``).

May import: ``store``, ``gocompat``, ``core``. Never ``rules`` or ``actions``: they meet
only through the store and ``core`` values.
"""
