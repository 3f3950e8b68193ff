"""``scrape.metric_relabel_configs`` applied to one scrape's samples, as Prometheus applies them.

Runs after ``flatten`` and before the store, so the rules, ``/metrics`` and the status
page all see the relabelled names: this is how a service's own names are mapped onto the
pack's (``myapp_sessions_len`` -> ``cache_keys_total{cache="sessions"}``).

Semantics are Prometheus's ``relabel.Process`` (v2.42), step by step: the source labels'
values joined by ``separator`` are matched against the anchored regex; ``replace``
expands ``target_label`` and ``replacement`` with Go's ``$1``/``${name}`` rules
(``gocompat.goregexp``) and deletes the target when the result is empty; ``hashmod`` is
the last 8 bytes of the MD5 of the joined values, big-endian, modulo ``modulus``;
``labelmap``/``labeldrop``/``labelkeep`` look at the label names as they were when the
step began. A label set left empty is dropped, as ``drop``/``keep`` drop it.

Where Prometheus fails the whole scrape (a series left without ``__name__``) or rejects
the later of two samples with the same labels, the sidecar keeps the rest of the scrape
and counts the lost samples as ``relabel_conflict``: one bad rule must not blind every
other rule.

Regexes are compiled once with the config (``core.config_relabel``). Label sets rarely
change between scrapes, so each scrape's outcome per label set is remembered for the next
one only: the per-scrape cost is a dictionary lookup per sample, and the memory is one
scrape's worth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.core.config_relabel import RelabelConfig
from sidecar.core.model import LabelSet
from sidecar.gocompat.goregexp import expand

__all__ = ["CONFLICT", "Relabelled", "Relabeller"]

CONFLICT = "relabel_conflict"
"""Drop reason of a sample whose relabelled series has no name or is a duplicate."""

_NAME = "__name__"


@dataclass(frozen=True, slots=True)
class Relabelled:
    """One scrape's samples after relabelling, and what was lost."""

    samples: dict[LabelSet, float]
    dropped: int
    """Samples a ``drop``/``keep``/``*equal`` step dropped, as configured."""
    conflicts: int
    """Samples lost to a missing ``__name__`` or a duplicate series (first one wins)."""


class Relabeller:
    """Applies a list of relabel configs, in order, to every sample of a scrape."""

    def __init__(self, configs: Sequence[RelabelConfig]) -> None:
        self._configs = tuple(configs)
        self._memo: dict[LabelSet, LabelSet | None] = {}

    def __bool__(self) -> bool:
        return bool(self._configs)

    def process(self, labels: LabelSet) -> LabelSet | None:
        """``labels`` relabelled, or None when a step drops the series."""
        d = dict(labels)
        for cfg in self._configs:
            if not _step(cfg, d):
                return None
        if not d:
            return None
        return tuple(sorted(d.items()))

    def apply(self, samples: dict[LabelSet, float]) -> Relabelled:
        """Relabel one scrape's samples; a duplicate keeps the first sample, as Prometheus does."""
        if not self._configs:
            return Relabelled(samples, 0, 0)
        old, memo = self._memo, {}
        out: dict[LabelSet, float] = {}
        dropped = conflicts = 0
        for labels, value in samples.items():
            new = old[labels] if labels in old else self.process(labels)
            memo[labels] = new
            if new is None:
                dropped += 1
            elif new in out or not any(k == _NAME for k, _ in new):
                conflicts += 1
            else:
                out[new] = value
        self._memo = memo
        return Relabelled(out, dropped, conflicts)


def _set(d: dict[str, str], name: str, value: str) -> None:
    # Prometheus's labels.Builder: setting the empty value deletes the label.
    if value:
        d[name] = value
    else:
        d.pop(name, None)


def _step(cfg: RelabelConfig, d: dict[str, str]) -> bool:
    """Apply one config to ``d`` in place; False when it drops the series."""
    act = cfg.action
    rx = cfg.compiled
    val = cfg.separator.join(d.get(name, "") for name in cfg.source_labels)
    if act == "drop":
        return rx.match(val) is None
    if act == "keep":
        return rx.match(val) is not None
    if act == "dropequal":
        return d.get(cfg.target_label, "") != val
    if act == "keepequal":
        return d.get(cfg.target_label, "") == val
    if act == "replace":
        m = rx.match(val)
        if m is not None:
            target = expand(cfg.target_label, m, rx.groupindex, rx.groups)
            if _valid_name(target):
                _set(d, target, expand(cfg.replacement, m, rx.groupindex, rx.groups))
    elif act == "lowercase":
        _set(d, cfg.target_label, val.lower())
    elif act == "uppercase":
        _set(d, cfg.target_label, val.upper())
    elif act == "hashmod":
        digest = hashlib.md5(val.encode(), usedforsecurity=False).digest()
        _set(d, cfg.target_label, str(int.from_bytes(digest[8:], "big") % cfg.modulus))
    elif act == "labelmap":
        for name, value in list(d.items()):
            m = rx.match(name)
            if m is not None:
                res = expand(cfg.replacement, m, rx.groupindex, rx.groups)
                if res:
                    _set(d, res, value)
    elif act == "labeldrop":
        for name in [n for n in d if rx.match(n) is not None]:
            del d[name]
    else:  # labelkeep: the config only admits the actions above
        for name in [n for n in d if rx.match(n) is None]:
            del d[name]
    return True


def _valid_name(name: str) -> bool:
    # model.LabelName.IsValid: [a-zA-Z_][a-zA-Z0-9_]*, checked without a regex per sample.
    return (
        bool(name) and name.isascii() and not name[0].isdigit() and name.replace("_", "a").isalnum()
    )
