"""core.validation: strict conversion, ``Checked`` value types, and one problem in our words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

import msgspec
import pytest

from sidecar.core.validation import (
    Checked,
    Model,
    Problem,
    builtins,
    convert,
    decode_json,
    json_problem,
)


class Seconds(Checked, float):
    json_schema = {"type": "string"}  # noqa: RUF012 -- a test type

    @classmethod
    def parse(cls, value: object) -> Self:
        if not isinstance(value, str) or not value.endswith("s"):
            raise ValueError(f"expected seconds such as 5s, got {value!r}")
        return cls(float(value[:-1]))


class Inner(Model, frozen=True):
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    wait: Seconds = Seconds(1.0)
    level: Literal["low", "high"] = "low"
    where: Path | None = None

    def __post_init__(self) -> None:
        if self.count == 7:
            raise ValueError("inner.count: 7 is refused")


class Outer(Model, frozen=True):
    inner: Inner = msgspec.field(default_factory=Inner)
    items: list[Inner] = msgspec.field(default_factory=list)
    labels: dict[str, str] = msgspec.field(default_factory=dict)


def _line(raw: object, *, echo: bool = True) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        Outer.validate(raw)
    return (Problem.of(caught.value, raw) if echo else Problem.of(caught.value)).line("config")


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"inner": {"count": 0}}, "inner.count: expected int >= 1, got 0"),
        ({"inner": {"count": "3"}}, "inner.count: expected int, got '3'"),
        ({"inner": {"count": True}}, "inner.count: expected int, got True"),
        ({"inner": {"wait": 5}}, "inner.wait: expected seconds such as 5s, got 5"),
        ({"inner": {"level": "mid"}}, "inner.level: invalid enum value 'mid'"),
        ({"inner": {"where": 3}}, "inner.where: expected a path, got 3"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"items": [{}, {"extra": 1}]}, "items.1.extra: unknown key"),
        ({"inner": {"count": 7}}, "inner: inner.count: 7 is refused"),
        ({"labels": {"a": 1}}, "labels: expected str, got int"),
        ({"inner": [1]}, "inner: expected object, got [1]"),
        ([], "config: expected object, got []"),
    ],
)
def test_one_problem_in_our_words(raw: object, line: str) -> None:
    assert _line(raw) == line


def test_without_the_input_the_value_is_not_echoed() -> None:
    assert _line({"inner": {"count": "secret"}}, echo=False) == "inner.count: expected int, got str"


def test_a_required_field_is_named() -> None:
    class Needs(Model, frozen=True):
        name: str

    with pytest.raises(msgspec.ValidationError) as caught:
        Needs.validate({})
    assert Problem.of(caught.value).line() == "name: required key is missing"


def test_checked_values_convert_and_go_back_to_builtins() -> None:
    got = convert({"inner": {"wait": "2.5s", "where": "/x"}, "items": [{"count": 2}]}, Outer)
    assert got.inner.wait == 2.5
    assert type(got.inner.wait) is Seconds
    assert got.inner.where == Path("/x")
    assert builtins(got) == {
        "inner": {"count": 1, "wait": 2.5, "level": "low", "where": "/x"},
        "items": [{"count": 2, "wait": 1.0, "level": "low", "where": None}],
        "labels": {},
    }


def test_json_is_strict_too() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_json(b'{"inner": {"count": 1.0}}', Outer)
    assert Problem.of(caught.value).line() == "inner.count: expected int, got float"
    with pytest.raises(msgspec.DecodeError) as bad:
        decode_json(b'{"inner": ', Outer)
    assert not isinstance(bad.value, msgspec.ValidationError)


def test_without_the_input_an_enum_value_is_not_echoed() -> None:
    """A hostile string where an enum is expected is not repeated back."""
    with pytest.raises(msgspec.ValidationError) as caught:
        Outer.validate({"inner": {"level": "x" * 1000}})
    assert Problem.of(caught.value).line() == "inner.level: invalid enum value"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"inner": {"count": "9"}}', "inner.count: expected int, got str"),
        (b"{not", "Invalid JSON: object keys must be strings (byte 1)"),
        (b"", "Invalid JSON: input data was truncated"),
        (b"\xff", "Invalid JSON: invalid character (byte 0)"),
    ],
)
def test_json_problem_names_a_wrong_shape_or_a_document_that_is_not_json(
    body: bytes, line: str
) -> None:
    """A wrong shape is a Problem; a document that is not JSON says where parsing stopped."""
    with pytest.raises(msgspec.DecodeError) as caught:
        decode_json(body, Outer)
    assert json_problem(caught.value).line() == line


class Tolerant(msgspec.Struct):
    items: list[object] = msgspec.field(default_factory=list)


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [' + b"[" * 100_000,
        b'{"items": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
        b'{"skipped": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    ],
)
def test_a_document_nested_too_deeply_is_refused_not_a_crash(body: bytes) -> None:
    """Nesting past the recursion limit, kept or skipped, is a DecodeError, not a RecursionError."""
    with pytest.raises(msgspec.DecodeError) as caught:
        decode_json(body, Tolerant)
    assert json_problem(caught.value).line() == "Invalid JSON: nested too deeply"
