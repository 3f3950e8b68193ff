"""pprof's profile.proto, decoded with the protobuf library, summed per call site.

The message definitions are written here from the published format
(github.com/google/pprof, ``proto/profile.proto``) as a ``FileDescriptorProto`` and
compiled by the protobuf runtime on the first decode (the runtime costs the sidecar
memory in every pod, and most never capture evidence): no generated code, no hand-written wire
decoder. Go serves the profile gzipped; ``decode`` takes either form, refuses more than
``limit`` bytes once inflated (a gzip bomb must not cost the sidecar its memory), and
wraps every failure in ``ProfileError``.

A call site is the first frame of a stack, leaf first, that is not the runtime's own
(``runtime.``, ``internal/``): the allocation in ``runtime.mapassign_faststr`` is the
leaking function's map write. Its stack is kept from there, ``max_frames`` deep.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sidecar.core.errors import EvidenceError

__all__ = ["ProfileError", "SiteValues", "Stack", "decode", "is_runtime", "site_values"]

Stack = tuple[str, ...]
"""Function names of one call site's stack, the site first, callers after it."""

# descriptor.proto's enum value names, resolved when the message class is built.
_INT64, _UINT64, _STRING, _BOOL, _MSG = (
    "TYPE_INT64",
    "TYPE_UINT64",
    "TYPE_STRING",
    "TYPE_BOOL",
    "TYPE_MESSAGE",
)
_ONE, _MANY = "LABEL_OPTIONAL", "LABEL_REPEATED"

# (message, [(field, number, type, label, message type)]), as in profile.proto.
_MESSAGES: list[tuple[str, list[tuple[str, int, str, str, str]]]] = [
    (
        "Profile",
        [
            ("sample_type", 1, _MSG, _MANY, "ValueType"),
            ("sample", 2, _MSG, _MANY, "Sample"),
            ("mapping", 3, _MSG, _MANY, "Mapping"),
            ("location", 4, _MSG, _MANY, "Location"),
            ("function", 5, _MSG, _MANY, "Function"),
            ("string_table", 6, _STRING, _MANY, ""),
            ("drop_frames", 7, _INT64, _ONE, ""),
            ("keep_frames", 8, _INT64, _ONE, ""),
            ("time_nanos", 9, _INT64, _ONE, ""),
            ("duration_nanos", 10, _INT64, _ONE, ""),
            ("period_type", 11, _MSG, _ONE, "ValueType"),
            ("period", 12, _INT64, _ONE, ""),
            ("comment", 13, _INT64, _MANY, ""),
            ("default_sample_type", 14, _INT64, _ONE, ""),
            ("doc_url", 15, _STRING, _ONE, ""),
        ],
    ),
    ("ValueType", [("type", 1, _INT64, _ONE, ""), ("unit", 2, _INT64, _ONE, "")]),
    (
        "Sample",
        [
            ("location_id", 1, _UINT64, _MANY, ""),
            ("value", 2, _INT64, _MANY, ""),
            ("label", 3, _MSG, _MANY, "Label"),
        ],
    ),
    (
        "Label",
        [
            ("key", 1, _INT64, _ONE, ""),
            ("str", 2, _INT64, _ONE, ""),
            ("num", 3, _INT64, _ONE, ""),
            ("num_unit", 4, _INT64, _ONE, ""),
        ],
    ),
    (
        "Mapping",
        [
            ("id", 1, _UINT64, _ONE, ""),
            ("memory_start", 2, _UINT64, _ONE, ""),
            ("memory_limit", 3, _UINT64, _ONE, ""),
            ("file_offset", 4, _UINT64, _ONE, ""),
            ("filename", 5, _INT64, _ONE, ""),
            ("build_id", 6, _INT64, _ONE, ""),
            ("has_functions", 7, _BOOL, _ONE, ""),
            ("has_filenames", 8, _BOOL, _ONE, ""),
            ("has_line_numbers", 9, _BOOL, _ONE, ""),
            ("has_inline_frames", 10, _BOOL, _ONE, ""),
        ],
    ),
    (
        "Location",
        [
            ("id", 1, _UINT64, _ONE, ""),
            ("mapping_id", 2, _UINT64, _ONE, ""),
            ("address", 3, _UINT64, _ONE, ""),
            ("line", 4, _MSG, _MANY, "Line"),
            ("is_folded", 5, _BOOL, _ONE, ""),
        ],
    ),
    (
        "Line",
        [
            ("function_id", 1, _UINT64, _ONE, ""),
            ("line", 2, _INT64, _ONE, ""),
            ("column", 3, _INT64, _ONE, ""),
        ],
    ),
    (
        "Function",
        [
            ("id", 1, _UINT64, _ONE, ""),
            ("name", 2, _INT64, _ONE, ""),
            ("system_name", 3, _INT64, _ONE, ""),
            ("filename", 4, _INT64, _ONE, ""),
            ("start_line", 5, _INT64, _ONE, ""),
        ],
    ),
]

_PACKAGE = "perftools.profiles"


@cache
def _profile_class() -> Any:
    from google.protobuf import (  # noqa: PLC0415 -- loaded on the first capture only
        descriptor_pb2,
        descriptor_pool,
        message_factory,
    )

    field_type = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="leak_sidecar/profile.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES:
        message = file.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            message.field.add(
                name=field,
                number=number,
                type=field_type.Type.Value(kind),
                label=field_type.Label.Value(label),
                type_name=f".{_PACKAGE}.{type_name}" if type_name else None,
            )
    # A pool of our own: nothing else in the process can clash with these names.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Profile"))


class ProfileError(EvidenceError):
    """A profile cannot be read: not gzip, not a profile, too large, or not the kind."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid", message)


def decode(data: bytes, *, limit: int) -> Any:
    """The ``Profile`` message in ``data`` (gzipped or not), at most ``limit`` bytes inflated."""
    raw = data
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as inflating:
                raw = inflating.read(limit + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise ProfileError(
                f"expected a gzipped profile, the gzip stream is broken: {exc}"
            ) from exc
        if len(raw) > limit:
            raise ProfileError(f"the profile inflates past {limit} bytes")
    from google.protobuf.message import DecodeError  # noqa: PLC0415 -- with _profile_class

    profile = _profile_class()()
    try:
        profile.ParseFromString(raw)
    except DecodeError as exc:
        raise ProfileError(f"expected a pprof profile.proto message: {exc}") from exc
    return profile


def is_runtime(function: str) -> bool:
    """Whether ``function`` is the Go runtime's own, never the site of a leak."""
    return function.startswith(("runtime.", "internal/", "runtime/internal/"))


@dataclass(frozen=True, slots=True)
class SiteValues:
    """A profile's values summed per call site, in the order of ``types``."""

    types: tuple[str, ...]
    """Each value's ``type/unit``, e.g. ``inuse_space/bytes``."""
    sites: Mapping[Stack, tuple[int, ...]]


def site_values(profile: Any, wanted: tuple[str, ...], *, max_frames: int) -> SiteValues:
    """Sum the sample values named ``wanted`` (sample types, e.g. ``inuse_space``) per site."""
    strings = list(profile.string_table)

    def text(index: int) -> str:
        return strings[index] if 0 <= index < len(strings) else ""

    types = [text(t.type) for t in profile.sample_type]
    missing = [w for w in wanted if w not in types]
    if missing:
        raise ProfileError(f"expected sample types {list(wanted)}, the profile has {types}")
    columns = [types.index(w) for w in wanted]
    units = tuple(
        f"{w}/{text(profile.sample_type[i].unit)}" for w, i in zip(wanted, columns, strict=True)
    )
    names = {f.id: text(f.name) for f in profile.function}
    # A location holds its inlined frames innermost first, as the stack does.
    frames = {
        loc.id: [names.get(line.function_id, "?") for line in loc.line] for loc in profile.location
    }
    sums: dict[Stack, list[int]] = {}
    for sample in profile.sample:
        stack = [name for loc in sample.location_id for name in frames.get(loc, ["?"])]
        site = next((i for i, name in enumerate(stack) if not is_runtime(name)), 0)
        key = tuple(stack[site : site + max_frames])
        acc = sums.setdefault(key, [0] * len(columns))
        for j, col in enumerate(columns):
            acc[j] += sample.value[col] if col < len(sample.value) else 0
    return SiteValues(units, {k: tuple(v) for k, v in sums.items()})
