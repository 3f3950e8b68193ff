"""Go's and Prometheus's text, byte for byte, where it shows through to users.

Owns: Go's number and string formatting (``gofmt``), strict, position-aware YAML
decoding with Go's error wording (``yamlnode``), and Go's ``regexp.Expand`` templates
(``goregexp``: ``$1``/``${name}`` in ``label_replace`` and in relabelling), so that rule
files, rule tests and relabel configs read and fail as they do in Prometheus. Go's time
and duration formats live in ``core.times`` and ``core.durations``, next to the
sidecar's own.

May import: ``core``.
"""
