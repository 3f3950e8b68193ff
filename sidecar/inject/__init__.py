"""Inject: the sidecar added to pods, for ``leak-sidecar inject`` and the admission webhook.

Owns: the injection settings file (``settings``), the one injection function and the
pod annotations it reads (``pod``), manifests in and out (``manifests``: what
``leak-sidecar inject`` does to a YAML stream), and the webhook's decision on an
AdmissionReview with its JSONPatch (``review``).

May import: ``core`` and the standard library; never aiohttp: it is pure, so that the
manifest command and the webhook server produce the same pod from the same function.
"""
