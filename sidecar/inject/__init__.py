"""Inject: the sidecar added to a pod, for ``leak-sidecar inject`` and the admission webhook.

Owns: the injection settings file (``settings``), the one injection function and the
pod annotations it reads (``pod``).

May import: ``core`` and the standard library; never aiohttp: it is pure, so that the
manifest command and the webhook server produce the same pod from the same function.
"""
