"""Quantities for people: the one formatter the status page and the demo share."""

from __future__ import annotations

import pytest

from sidecar.web.units import format_bytes, format_percent, si


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0.0, "0"),
        (999.0, "999"),
        (999.9, "1k"),
        (245_133.0, "245k"),
        (1_234_567.0, "1.23M"),
        (342_000_000.0, "342M"),
        (-2.5e9, "-2.5G"),
        (0.00123, "0.00123"),
        (0.02, "0.02"),
        (1e15, "1e+15"),
    ],
)
def test_si_has_three_significant_digits_and_a_suffix(value: float, label: str) -> None:
    """Amounts have three significant digits and an SI suffix, as on the chart axes."""
    assert si(value) == label


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (12601, "12.3 KiB"),
        (2 * 1024 * 1024, "2.0 MiB"),
        (31_457_280, "30.0 MiB"),
        (2_689_597_440, "2.5 GiB"),
        (3 * 1024**3, "3.0 GiB"),
        (5000 * 1024**3, "4.9 TiB"),
        (3 * 1024**5, "3072.0 TiB"),
        (-2048, "-2.0 KiB"),
        (float("nan"), "nan B"),
    ],
)
def test_bytes_are_in_binary_units_to_one_decimal(n: float, text: str) -> None:
    """Bytes read in KiB, MiB, GiB, TiB with one decimal; under 1 KiB, whole bytes."""
    assert format_bytes(n) == text


@pytest.mark.parametrize(("ratio", "text"), [(0.8312, "83%"), (0.0, "0%"), (1.005, "100%")])
def test_percent_is_whole(ratio: float, text: str) -> None:
    """A ratio prints as a whole percentage."""
    assert format_percent(ratio) == text
