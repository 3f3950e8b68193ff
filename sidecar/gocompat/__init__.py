"""Go's and Prometheus's text, byte for byte, where it shows through to users.

Owns: Go's number and string formatting (``gofmt``) and strict, position-aware YAML
decoding with Go's error wording (``yamlnode``), so that rule files and rule tests read
and fail as they do in promtool. Go's time and duration formats live in ``core.times``
and ``core.durations``, next to the sidecar's own.

May import: ``core``.
"""
