"""``leak-sidecar demo``: a leaking stand-in app and the whole sidecar, narrated.

Owns: the narrator (``narrator``), the stand-in Go order service (``app``) and the
``demo-app`` command that runs it (``app_cmd``), its simulated caches, pool and GC
(``sim``), Go's ``MemStats`` accounting of that heap (``memstats``) and its fault
injection (``faults``).

May import: ``supervisor`` and everything below it. The stand-in app serves HTTP of its
own (``aiohttp.web``): it plays the Go service, not the sidecar.
"""
