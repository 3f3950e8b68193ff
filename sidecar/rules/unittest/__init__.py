"""``leak-sidecar test-rules``: rule unit tests in ``promtool test rules`` format.

Owns: the test runner (``runner``), series descriptions (``series``) and promtool's
failure text (``report``), so that one test file passes or fails alike in both tools.

May import: the rest of ``rules``, ``store``, ``gocompat``, ``core``.
"""
