"""Kubernetes YAML in, the same with the sidecar injected out: ``leak-sidecar inject``.

A multi-document stream (``kubectl get -o yaml``, a kustomize build, a Helm render) is
read document by document. Each workload (Deployment, StatefulSet, DaemonSet,
ReplicaSet, Job, CronJob, Pod, and the items of a ``List``) whose pod template opts in
(``leak-sidecar.io/inject: "true"``, or every one not opted out with ``all``) goes
through ``pod.inject``; every other document is written back as it came, byte for
byte, comments included, so that a diff of the output shows only what was injected.
Any problem raises before anything is returned: nothing half-done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sidecar.core.errors import InjectError, ManifestError, clip
from sidecar.inject.pod import inject, injected, wants
from sidecar.inject.settings import InjectSettings

__all__ = ["TEMPLATES", "Injected", "inject_manifests"]

TEMPLATES: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""Where each workload kind keeps the pod it runs (the Pod is its own)."""


@dataclass
class Injected:
    """The output stream, and which objects were injected (``Kind namespace/name``)."""

    text: str
    objects: list[str] = field(default_factory=list)


def inject_manifests(
    text: str, settings: InjectSettings, *, inject_all: bool, source: str
) -> Injected:
    """``text`` with every opted-in workload injected; ``source`` names it in errors.

    ``ManifestError`` when ``text`` is not YAML; ``InjectError`` (``source: document N
    (Kind name): why``) when a workload that opts in cannot be injected.
    """
    starts, docs = _parse(text, source)
    if not docs:
        return Injected(text)
    out = Injected(text[: starts[0]])
    ends = [*starts[1:], len(text)]
    redumped = False
    for n, (doc, start, end) in enumerate(zip(docs, starts, ends, strict=True), 1):
        segment = text[start:end]
        new = _document(doc, settings, inject_all, f"{source}: document {n}", out.objects)
        explicit = segment.startswith(("---", "%"))
        if redumped and not explicit:
            out.text += "---\n"  # the next document had no marker: it needs one now
        if new is None:
            out.text += segment
            redumped = False
            continue
        out.text += ("---\n" if explicit else "") + yaml.safe_dump(
            new, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
        redumped = True
    return out


def _parse(text: str, source: str) -> tuple[list[int], list[Any]]:
    """Where each document starts, and what each holds."""
    try:
        starts = []
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.DocumentStartEvent):
                assert ev.start_mark is not None  # the parser marks every event it makes
                starts.append(ev.start_mark.index)
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        raise ManifestError("yaml", f"{source}: invalid YAML{at}: {clip(what, 200)}") from None
    return starts, docs


def _document(
    doc: Any, settings: InjectSettings, inject_all: bool, where: str, done: list[str]
) -> Any:
    """The injected document, or None when it is to be written back as it came."""
    if not isinstance(doc, Mapping):
        return None
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        items = doc["items"]
        new_items = [
            _object(item, settings, inject_all, f"{where}, item {i}", done)
            for i, item in enumerate(items, 1)
        ]
        if all(new is None for new in new_items):
            return None
        merged = [old if new is None else new for old, new in zip(items, new_items, strict=True)]
        return {**doc, "items": merged}
    return _object(doc, settings, inject_all, where, done)


def _object(
    obj: Any, settings: InjectSettings, inject_all: bool, where: str, done: list[str]
) -> dict[str, Any] | None:
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("kind")
    path = TEMPLATES.get(kind) if isinstance(kind, str) else None
    if path is None:
        return None
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, Mapping) else None
    if not isinstance(template, Mapping):
        return None  # nothing to inject into; the API server will say what is missing
    name = _name(obj)
    try:
        if injected(template) or not wants(template, default=inject_all):
            return None
        patched = inject(template, settings)
    except InjectError as exc:
        raise InjectError(exc.key, f"{where} ({kind} {name}): {exc}") from exc
    done.append(f"{kind} {name}")
    return _replace(obj, path, patched)


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = str(meta.get("name") or meta.get("generateName") or "(unnamed)")
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name


def _replace(
    obj: Mapping[str, Any], path: tuple[str, ...], value: dict[str, Any]
) -> dict[str, Any]:
    """A copy of ``obj`` with ``value`` at ``path`` (shallow copies along the path)."""
    if not path:
        return value
    head, *rest = path
    return {**obj, head: _replace(obj[head], tuple(rest), value)}
