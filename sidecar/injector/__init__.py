"""Injector: ``leak-sidecar injector``, the mutating admission webhook over HTTPS.

Owns: the webhook server, its routes, decisions metric and logs (``server``), and the
serving certificate, re-read when it changes on disk (``tls``). What is decided for a
review, and the patch, come from ``inject.review``: this stage adds only the HTTP.

May import: ``web`` (the server machinery: limits, probes, /metrics), ``inject``,
``core``.
"""
