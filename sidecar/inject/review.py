"""An ``admission.k8s.io/v1`` AdmissionReview in, the answer out: the webhook's decision.

``review`` is the whole of ``leak-sidecar injector`` but the HTTP around it: it reads
the review the API server sent, decides, and builds the response, with the pod's
change as an RFC 6902 JSONPatch computed (``jsonpatch``) between the pod as sent and
what ``pod.inject`` makes of it, so that the webhook and ``leak-sidecar inject`` give
the same pod. Every pod is allowed: a pod that is not to be injected, or cannot be, is
admitted unchanged (with a warning ``kubectl`` shows when it cannot be), because the
injector must never be why a workload does not start.

A body that is not a v1 AdmissionReview raises ``ReviewInvalid`` with what was wrong;
the server answers 400. What the API server adds that is not read here is ignored.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, get_args

import jsonpatch
import msgspec
import orjson
from msgspec import Meta

from sidecar.core.errors import InjectError, clip
from sidecar.core.validation import Problem, convert
from sidecar.inject.pod import ANNOTATION_INJECT, inject, injected, wants
from sidecar.inject.settings import InjectSettings

__all__ = ["DECISIONS", "Decision", "Outcome", "ReviewInvalid", "review"]

Decision = Literal[
    "injected", "already_injected", "opted_out", "not_opted_in", "ignored", "refused", "invalid"
]
DECISIONS: tuple[Decision, ...] = get_args(Decision)
"""Every decision, in order; ``invalid`` is the server's: a body that was not a review
(answered 400)."""

_API_VERSION = "admission.k8s.io/v1"


class ReviewInvalid(ValueError):
    """The body is not an AdmissionReview this webhook can answer; says why."""


class _Model(msgspec.Struct, frozen=True, kw_only=True):
    """The API server's, not ours: the fields read are checked, new ones are tolerated."""


class _Kind(_Model, frozen=True):
    group: str
    version: str
    kind: str


class _Resource(_Model, frozen=True):
    group: str
    version: str
    resource: str


class _Request(_Model, kw_only=True, frozen=True):
    uid: Annotated[str, Meta(min_length=1, max_length=256)]
    kind: _Kind
    resource: _Resource
    sub_resource: str | None = msgspec.field(default=None, name="subResource")
    operation: str
    namespace: str | None = None
    object: dict[str, Any] | None = None


class _Review(_Model, kw_only=True, frozen=True):
    api_version: Literal["admission.k8s.io/v1"] = msgspec.field(name="apiVersion")
    kind: Literal["AdmissionReview"]
    request: _Request


@dataclass(frozen=True)
class Outcome:
    """What was decided for one review, and the AdmissionReview to answer with."""

    decision: Decision
    reason: str
    uid: str
    namespace: str | None
    pod: str | None
    """The pod's name, or its generateName with a trailing '*' (a Deployment's pods
    have no name yet when they are admitted)."""
    response: dict[str, Any] = field(repr=False)
    patch: list[dict[str, Any]] = field(default_factory=list, repr=False)


def review(body: bytes, settings: InjectSettings, *, default: bool) -> Outcome:
    """Decide on the AdmissionReview ``body``: pods opt in by their annotation, else
    ``default`` (False for ``/inject/pod``, True for ``/inject/namespace``)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewInvalid(f"expected an AdmissionReview in JSON: {clip(exc, 200)}") from None
    expected = f"expected an {_API_VERSION} AdmissionReview with a request"
    if not isinstance(raw, dict):
        raise ReviewInvalid(f"{expected}, got a JSON {type(raw).__name__}")
    try:
        req = convert(raw, _Review).request
    except msgspec.ValidationError as exc:
        raise ReviewInvalid(f"{expected}: {clip(Problem.of(exc, raw).line())}") from None
    pod = req.object
    name = _name(pod)

    def answer(decision: Decision, reason: str, **response: Any) -> Outcome:
        full = {"uid": req.uid, "allowed": True, **response}
        body = {"apiVersion": _API_VERSION, "kind": "AdmissionReview", "response": full}
        return Outcome(decision, reason, req.uid, req.namespace, name, body)

    what = (req.kind.group, req.kind.kind, req.resource.resource, req.sub_resource)
    if what != ("", "Pod", "pods", None) or req.operation != "CREATE":
        target = "/".join(p for p in (req.resource.resource, req.sub_resource) if p)
        return answer("ignored", f"{req.operation} {target}: only pod creations are injected")
    if pod is None:
        raise ReviewInvalid("expected request.object to hold the pod being created, got null")
    if injected(pod):
        return answer("already_injected", "the pod carries leak-sidecar.io/status: injected")
    try:
        if not wants(pod, default=default):
            if wants(pod, default=True) is False:
                return answer("opted_out", f'{ANNOTATION_INJECT}: "false"')
            return answer("not_opted_in", f"no {ANNOTATION_INJECT} annotation")
        new = inject(pod, settings)
    except InjectError as exc:
        warning = f"leak-sidecar: not injected: {exc}"
        return answer("refused", str(exc), warnings=[clip(warning, 400)])
    patch = jsonpatch.make_patch(pod, new).patch
    encoded = base64.b64encode(orjson.dumps(patch)).decode("ascii")
    return replace(answer("injected", "", patchType="JSONPatch", patch=encoded), patch=patch)


def _name(pod: dict[str, Any] | None) -> str | None:
    meta = pod.get("metadata") if pod is not None else None
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("name"), str) and meta["name"]:
        return str(meta["name"])
    if isinstance(meta.get("generateName"), str):
        return f"{meta['generateName']}*"
    return None
