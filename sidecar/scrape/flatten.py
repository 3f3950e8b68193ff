"""Decode a Go expvar body and flatten it to samples with metric metadata.

The body is distrusted: it is decoded lazily with msgspec, one object at a time, as
``dict[str, msgspec.Raw]`` so that arrays and strings nobody wants are never built and
an object is counted (``expvar_json.count_members``) before it is expanded. The rules:

- a number is a sample, a bool is 0 or 1, null is nothing; numbers too large for a
  double become +Inf or -Inf, and Go's bare ``NaN``/``+Inf``/``-Inf`` pass through;
- a string is skipped, or with ``scrape.strings: info`` becomes ``<name>_info{value=...}``;
- an array is skipped (``memstats``' arrays feed derived metrics, see ``memstats.py``);
- an object is expanded, its keys joined to the name with ``_``, unless it has more than
  ``max_object_keys`` keys or sits at ``max_depth``: then it becomes ``<name>_keys``;
- a map named in ``scrape.maps`` becomes one metric with its keys as label values;
- ``memstats`` becomes client_golang's ``go_memstats_*`` / ``go_gc_*`` metrics.

Names are sanitized to ``[a-zA-Z_][a-zA-Z0-9_]*``. Families are claimed in a fixed order
(memstats, configured maps, the rest sorted by key); a later source mapping to a name
already claimed is dropped and reported. At most ``max_series`` samples are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from sidecar.core.config import MapConfig, ScrapeConfig
from sidecar.core.errors import ScrapeError, clip
from sidecar.core.model import LabelSet, MetricMeta
from sidecar.scrape import memstats as ms
from sidecar.scrape.jsonscan import (
    BAD_JSON,
    LBRACE,
    LBRACKET,
    MIN_MEMBER_BYTES,
    QUOTE,
    count_members,
    decode,
    decode_object,
    first_byte,
    number,
)

__all__ = [
    "COLLAPSE_REASONS",
    "DROP_REASONS",
    "OWN_PREFIX",
    "Flattened",
    "family_of",
    "flatten",
    "sanitize",
]

OWN_PREFIX = "leak_sidecar_"
"""Names the sidecar's own metrics use; an expvar mapping to one is a collision."""

COLLAPSE_REASONS = ("max_object_keys", "max_depth")
"""Why an object is exported as ``<name>_keys``: the keys of ``Flattened.collapsed``."""

DROP_REASONS = ("max_series", "max_text_length")
"""Why a sample is not kept: the keys of ``Flattened.dropped``."""

_STR = msgspec.json.Decoder(str)
_MAX_WARNINGS = 20
_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class Flattened:
    """One body's samples and metadata, with what the caps and collisions cost."""

    samples: dict[LabelSet, float]
    meta: dict[str, MetricMeta]
    warnings: tuple[str, ...]
    collapsed: dict[str, int]
    """Objects exported as ``<name>_keys``, by reason (every one of ``COLLAPSE_REASONS``)."""
    collisions: int
    dropped: dict[str, int]
    """Samples not kept, by reason (every one of ``DROP_REASONS``)."""


def sanitize(key: str) -> str:
    """An expvar key as a metric name: every character outside the alphabet becomes ``_``.

    Colons, legal in Prometheus names, are replaced too: they are reserved for recording rules.
    """
    name = _BAD_CHARS.sub("_", key)
    return name if name and not name[0].isdigit() else "_" + name


def family_of(sample_name: str, meta: Mapping[str, MetricMeta]) -> str:
    """The ``meta`` key a sample's family is under.

    ``meta`` is keyed by sample name (``x_total`` for a counter, ``x_info`` for an info
    metric), except that a summary is keyed by its family name ``x`` alone: its samples
    ``x{quantile=...}``, ``x_sum`` and ``x_count`` all map to ``x``.
    """
    if sample_name in meta:
        return sample_name
    base, _, suffix = sample_name.rpartition("_")
    m = meta.get(base)
    if m is not None and m.kind == "summary" and suffix in ("sum", "count"):
        return base
    return sample_name


def flatten(body: bytes | bytearray, config: ScrapeConfig) -> Flattened:
    """Decode and flatten one expvar body; raises ``ScrapeError`` only for the whole body."""
    top = decode(body, config.max_object_keys)
    f = _Flattener(config)
    try:
        f.run(top)
    except RecursionError as exc:
        raise ScrapeError(
            "too_deep", "expvar body nests deeper than the decoder can follow"
        ) from exc
    return f.result()


Owner = tuple[str, ...]
"""Who claims a name: the raw keys of an expvar value, which a dotted path cannot tell apart."""
_SIDECAR: Owner = ("\x00", "leak_sidecar_* (reserved)")
_MEMSTATS: Owner = ("memstats",)


def _show(owner: Owner, limit: int = 80) -> str:
    return clip(owner[-1] if owner[0] == "\x00" else ".".join(owner), limit)


def _map_owner(m: MapConfig) -> Owner:
    return ("\x00", f"scrape.maps {m.path}")


class _Flattener:
    def __init__(self, config: ScrapeConfig) -> None:
        self.c = config
        self.samples: dict[LabelSet, float] = {}
        self.meta: dict[str, MetricMeta] = {}
        self.owners: dict[str, Owner] = {}
        self.warnings: list[str] = []
        self.more_warnings = 0
        self.collapsed = dict.fromkeys(COLLAPSE_REASONS, 0)
        self.collisions = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.handled: set[tuple[str, ...]] = set()
        self.small = MIN_MEMBER_BYTES * (config.max_object_keys + 1)

    def result(self) -> Flattened:
        warnings = self.warnings
        if self.more_warnings:
            warnings = [*warnings, f"... and {self.more_warnings} more warnings"]
        return Flattened(
            self.samples, self.meta, tuple(warnings), self.collapsed, self.collisions, self.dropped
        )

    def run(self, top: dict[str, msgspec.Raw]) -> None:
        memstats = top.get("memstats")
        if memstats is not None and first_byte(memstats) == LBRACE:
            self.handled.add(("memstats",))
            self._memstats(memstats)
        for m in self.c.maps:
            self._configured_map(top, m)
        self._members(top, (), "", 1)

    # -- bookkeeping --------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(message)
        else:
            self.more_warnings += 1

    def _family(self, name: str, owner: Owner, meta: MetricMeta, extra: Iterable[str] = ()) -> bool:
        """Claim ``name`` (and the sample names ``extra``) for ``owner``; False on a collision."""
        owners = self.owners
        if not extra and name not in owners and not name.startswith(OWN_PREFIX):
            owners[name] = owner  # the common case: a name nobody holds
            self.meta[name] = meta
            return True
        for n in (name, *extra):
            holder = _SIDECAR if n.startswith(OWN_PREFIX) else self.owners.get(n)
            if holder is not None and holder != owner:
                self.collisions += 1
                self._warn(
                    f"{_show(owner)!r} maps to {n}, already taken by {_show(holder)!r}: dropped"
                )
                return False
        for n in (name, *extra):
            self.owners[n] = owner
        self.meta[name] = meta
        return True

    def _add(self, name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
        self._put(tuple(sorted((("__name__", name), *labels))), value)

    def _put(self, series: LabelSet, value: float) -> None:
        """Keep one sample of an already sorted label set, within ``max_series``."""
        if len(self.samples) >= self.c.max_series:
            self.dropped["max_series"] += 1
            return
        self.samples[series] = value

    def _too_long(self, owner: Owner, what: str) -> None:
        self.dropped["max_text_length"] += 1
        self._warn(
            f"{_show(owner)!r}: {what} longer than scrape.max_text_length "
            f"({self.c.max_text_length}): skipped"
        )

    def _expand(
        self,
        raw: msgspec.Raw,
        name: str,
        owner: Owner,
        labels: tuple[tuple[str, str], ...],
        deep: bool,
    ) -> dict[str, msgspec.Raw] | None:
        """Decode an object, or export it as ``<name>_keys`` when too wide or too deep."""
        if deep or len(raw) > self.small:
            n = count_members(raw)
            if deep or n > self.c.max_object_keys:
                self._collapse(name, owner, labels, n, "max_depth" if deep else "max_object_keys")
                return None
        try:
            return decode_object(raw)
        except BAD_JSON as exc:
            self._warn(f"{_show(owner)!r}: not decodable, skipped: {clip(exc, 120)}")
            return None

    def _collapse(
        self, name: str, owner: Owner, labels: tuple[tuple[str, str], ...], n: int, reason: str
    ) -> None:
        self.collapsed[reason] += 1
        keys = name + "_keys"
        if reason == "max_depth":
            why = f"sits at scrape.max_depth ({self.c.max_depth})"
        else:
            why = f"has more than scrape.max_object_keys ({self.c.max_object_keys}) keys"
        self._warn(f"{_show(owner)!r} {why}: exported as {keys} = {n}")
        help_ = (
            f"Number of keys of expvar object {_show(owner, 120)!r}, "
            "too large or too deep to expand."
        )
        if self._family(keys, owner, MetricMeta("gauge", help_)):
            self._add(keys, labels, float(n))

    # -- generic values -----------------------------------------------------------------

    def _members(
        self, obj: dict[str, msgspec.Raw], keys: tuple[str, ...], name: str, depth: int
    ) -> None:
        for key, raw in sorted(obj.items()):
            path = (*keys, key)
            if path in self.handled:
                continue
            if len(key) > self.c.max_text_length:
                self._too_long(keys or ("\x00", "the top level"), "a key")
                continue
            # Below the top level the name already starts well: no leading-digit check.
            child = f"{name}_{_BAD_CHARS.sub('_', key)}" if name else sanitize(key)
            self._value(path, child, raw, depth)

    def _value(self, owner: Owner, name: str, raw: msgspec.Raw, depth: int) -> None:
        b = first_byte(raw)
        if b == LBRACKET:
            return
        if b == LBRACE:
            if len(self.samples) >= self.c.max_series:
                # Past the cap nothing more is kept: count instead of descending.
                self.dropped["max_series"] += count_members(raw)
                return
            obj = self._expand(raw, name, owner, (), depth >= self.c.max_depth)
            if obj is not None:
                self._members(obj, owner, name, depth + 1)
            return
        value = number(raw)
        if value is not None:
            help_ = f"Expvar {_show(owner, 120)!r} read from the app's expvar endpoint."
            if self._family(name, owner, MetricMeta("untyped", help_)):
                self._add(name, (), value)
        elif b == QUOTE and self.c.strings == "info":
            self._info(owner, name, raw)

    def _info(self, owner: Owner, name: str, raw: msgspec.Raw) -> None:
        limit = self.c.max_text_length
        # Six bytes per character at most (\uXXXX), plus the quotes.
        try:
            text = None if len(raw) > 6 * limit + 2 else _STR.decode(raw)
        except BAD_JSON as exc:
            self._warn(f"{_show(owner)!r}: not decodable, skipped: {clip(exc, 120)}")
            return
        if text is None or len(text) > limit:
            self._too_long(owner, "a string value")
            return
        help_ = (
            f"Expvar string {_show(owner, 120)!r} read from the app's expvar endpoint, as a label."
        )
        # Keyed by sample name, as counters are; the family is ``name`` in the exposition.
        if self._family(name + "_info", owner, MetricMeta("info", help_), extra=(name,)):
            self._add(name + "_info", (("value", text),), 1.0)

    # -- configured maps ----------------------------------------------------------------

    def _resolve(
        self, top: dict[str, msgspec.Raw], path: str
    ) -> tuple[tuple[str, ...], msgspec.Raw] | None:
        """Find a dotted path; a key holding dots itself is matched whole, longest first."""
        obj: dict[str, msgspec.Raw] | None = top
        keys: tuple[str, ...] = ()
        rest = path
        while obj is not None:
            if rest in obj:
                return (*keys, rest), obj[rest]
            prefixes = [k for k in obj if rest.startswith(k + ".")]
            if not prefixes:
                return None
            key = max(prefixes, key=len)
            raw = obj[key]
            keys, rest = (*keys, key), rest[len(key) + 1 :]
            if first_byte(raw) != LBRACE:
                return None
            if len(raw) > self.small and count_members(raw) > self.c.max_object_keys:
                return None
            try:
                obj = decode_object(raw)
            except BAD_JSON:
                return None
        return None

    def _configured_map(self, top: dict[str, msgspec.Raw], m: MapConfig) -> None:
        found = self._resolve(top, m.path)
        if found is None:
            self._warn(f"scrape.maps: {m.path!r} is not in the expvar body")
            return
        keys, raw = found
        if first_byte(raw) != LBRACE:
            self._warn(f"scrape.maps: {m.path!r} is not an object: exported as a plain value")
            return
        self.handled.add(keys)
        name = m.name or sanitize(m.path)
        help_ = (
            f"Expvar map {clip(m.path, 120)!r} read from the app's expvar endpoint, "
            "one series per key."
        )
        if self._family(name, _map_owner(m), MetricMeta("untyped", help_)):
            ignored = self._map_level(m, name, raw, 0, ())
            if ignored:
                self._warn(
                    f"scrape.maps: {m.path!r} has {ignored} entries that do not fit "
                    f"labels {m.labels}: ignored"
                )

    def _map_level(
        self,
        m: MapConfig,
        name: str,
        raw: msgspec.Raw,
        level: int,
        labels: tuple[tuple[str, str], ...],
    ) -> int:
        """Export one level of a configured map; return how many entries did not fit."""
        obj = self._expand(raw, name, _map_owner(m), labels, deep=False)
        if obj is None:
            return 0
        ignored = 0
        last = level == len(m.labels) - 1
        for key, value in sorted(obj.items()):
            if len(key) > self.c.max_text_length:
                self._too_long(_map_owner(m), "a key")
                continue
            here = (*labels, (m.labels[level], key))
            if not last:
                if first_byte(value) == LBRACE:
                    ignored += self._map_level(m, name, value, level + 1, here)
                else:
                    ignored += 1
                continue
            leaf = number(value)
            if leaf is None:
                ignored += 1
            else:
                self._add(name, here, leaf)
        return ignored

    # -- memstats -----------------------------------------------------------------------

    def _memstats(self, raw: msgspec.Raw) -> None:
        fields = self._expand(raw, "memstats", _MEMSTATS, (), deep=False)
        if fields is None:
            return
        samples, problem = ms.samples(fields)
        if problem:
            self._warn(problem)
        claimed: dict[str, bool] = {}
        for family, series, value in samples:
            ok = claimed.get(family)
            if ok is None:
                extra = (family + "_sum", family + "_count") if family == ms.GC_SUMMARY else ()
                ok = claimed[family] = self._family(family, _MEMSTATS, ms.META[family], extra)
            if ok:
                self._put(series, value)
        rest = {k: v for k, v in fields.items() if k not in ms.USED}
        self._members(rest, ("memstats",), "memstats", 2)
