"""Alert templates: Go text/template syntax, Prometheus's functions, Go's output formats."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.errors import RuleError
from sidecar.gocompat.gofmt import (
    go_float,
    go_format_e,
    go_quote,
    go_sprintf,
    go_title,
)
from sidecar.rules.templates.expand import TemplateData, compile_template

DATA = TemplateData(
    labels={"__name__": "up", "instance": "cache-0.example.com:9120", "job": "orders"},
    external_labels={"cluster": "eu-1"},
    external_url="https://prom.example.com",
    value=1234567.0,
)


def expand(text: str, data: TemplateData = DATA) -> str:
    return compile_template(text, "Leak").expand(data)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("{{ $value }}", "1.234567e+06"),
        ("{{ .Value }}", "1.234567e+06"),
        ("{{ $labels.job }} {{ .Labels.job }} {{ $labels.missing }}|", "orders orders |"),
        ("{{ $externalLabels.cluster }} {{ $externalURL }}", "eu-1 https://prom.example.com"),
        ("{{ $value | humanize }}", "1.235M"),
        ("{{ humanize1024 $value }}", "1.177Mi"),
        ("{{ humanizeDuration $value }}", "14d 6h 56m 7s"),
        ("{{ humanizePercentage 0.25 }}", "25%"),
        ("{{ humanizeTimestamp 1.5 }}", "1970-01-01 00:00:01.5 +0000 UTC"),
        ('{{ "1e3" | humanize }}', "1k"),
        (
            '{{ printf "%.2f %d %s %q %v %5.1f|%-4d|" $value 42 "x" "y" 1.5 3.14159 7 }}',
            '1234567.00 42 x "y" 1.5   3.1|7   |',
        ),
        ('{{ printf "%d" $value }}', "%!d(float64=1.234567e+06)"),
        ("{{ toUpper $labels.job }} {{ $labels.job | toLower }}", "ORDERS orders"),
        ('{{ title "team orders-api" }}', "Team Orders-Api"),
        (
            '{{ reReplaceAll "(.+):([0-9]+)" "$2/${1}$$" $labels.instance }}',
            "9120/cache-0.example.com$",
        ),
        ('{{ reReplaceAll "(?P<host>[a-z]+)-" "${host}_" "a-b-" }}', "a_b_"),
        ('{{ reReplaceAll "x*" "-" "abc" }}', "-a-b-c-"),
        ('{{ match "^cache" $labels.instance }}', "true"),
        ("{{ $labels.instance | stripPort }}", "cache-0.example.com"),
        ('{{ stripDomain "cache-0.example.com:9120" }}', "cache-0:9120"),
        ('{{ parseDuration "1m30s" }}', "90"),
        ('{{ parseDuration "0" }} {{ parseDuration "1y1ms" }}', "0 3.1536000001e+07"),
        ('{{ tableLink "up > 1" }}', "/graph?g0.expr=up+%3E+1&g0.tab=1"),
        ("{{ if gt $value 100.0 }}big{{ else }}small{{ end }}", "big"),
        ('{{ if eq $labels.job "x" }}x{{ else if eq $labels.job "orders" }}o{{ end }}', "o"),
        ("{{ with $labels.missing }}has{{ else }}none{{ end }}", "none"),
        ("{{ with $labels.job }}{{ . }}{{ end }}", "orders"),
        (
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            "__name__=up;instance=cache-0.example.com:9120;job=orders;",
        ),
        ("{{ range $labels }}[{{ . }}]{{ end }}", "[up][cache-0.example.com:9120][orders]"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
        ('{{ and 1 0 }} {{ or 0 "" 3 }} {{ not true }}', "0 3 false"),
        ('{{ len $labels }} {{ len "héllo" }} {{ index $labels "job" }}', "3 6 orders"),
        ('{{ print 1 2 "a" 3 }}', "1 2a3"),
        ("a  {{- 1 -}}  b", "a1b"),
        ("{{/* a comment */}}kept", "kept"),
        ("{{ 0x10 }} {{ 1e3 }} {{ 'a' }} {{ 1.5 }}", "16 1000 97 1.5"),
        ('{{ "\\101\\x42\\u00e9\\U0001F600\\\\\\"\\t" }}', 'ABé😀\\"\t'),
        ("{{ '\\'' }} {{ '\\x41' }}", "39 65"),
        ("{{ $value | }}", "1.234567e+06"),
        ('{{ (printf "%s!" $labels.job) }}', "orders!"),
    ],
)
def test_expands_like_prometheus(text: str, want: str) -> None:
    """Each template expands to the text Prometheus 2.42 produces for it."""
    assert expand(text) == want


@pytest.mark.parametrize(
    ("value", "humanize", "h1024", "duration"),
    [
        (0.0, "0", "0", "0s"),
        (0.000123, "123u", "0.000123", "123us"),
        (-2048.0, "-2.048k", "-2ki", "-34m 8s"),
        (0.30000000000000004, "300m", "0.3", "300ms"),
        (math.nan, "NaN", "NaN", "NaN"),
        (-math.inf, "-Inf", "-Inf", "-Inf"),
        (1e21, "1Z", "867.4Ei", "-106751991167300d -15h -30m -8s"),
        (59.5, "59.5", "59.5", "59.5s"),
        (3725.0, "3.725k", "3.638ki", "1h 2m 5s"),
    ],
)
def test_humanize_family(value: float, humanize: str, h1024: str, duration: str) -> None:
    """humanize, humanize1024 and humanizeDuration print as Prometheus's Go code does."""
    data = TemplateData({}, value=value)
    assert expand("{{ humanize $value }}", data) == humanize
    assert expand("{{ humanize1024 $value }}", data) == h1024
    assert expand("{{ humanizeDuration $value }}", data) == duration


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "{{ $value | humanizeTimestamp }}",
            "<error expanding template: error executing template __alert_Leak: template: "
            '__alert_Leak:1:124: executing "__alert_Leak" at <humanizeTimestamp>: error '
            "calling humanizeTimestamp: 1e+21 cannot be represented as a nanoseconds "
            "timestamp since it overflows int64>",
        ),
        (
            "x\n {{ .Foo }}",
            "<error expanding template: error executing template __alert_Leak: template: "
            '__alert_Leak:2:4: executing "__alert_Leak" at <.Foo>: can\'t evaluate field Foo '
            "in type struct { Labels map[string]string; ExternalLabels map[string]string; "
            "ExternalURL string; Value float64 }>",
        ),
        (
            "{{ gt $value 1 }}",
            "<error expanding template: error executing template __alert_Leak: template: "
            '__alert_Leak:1:115: executing "__alert_Leak" at <gt $value 1>: error calling '
            "gt: incompatible types for comparison>",
        ),
        (
            "{{ toUpper $value }}",
            "<error expanding template: error executing template __alert_Leak: template: "
            '__alert_Leak:1:123: executing "__alert_Leak" at <$value>: wrong type for '
            "value; expected string; got float64>",
        ),
        (
            '{{ reReplaceAll "(" "" "x" }}',
            "<error expanding template: error executing template __alert_Leak: template: "
            '__alert_Leak:1:115: executing "__alert_Leak" at <reReplaceAll "(" "" "x">: '
            "error calling reReplaceAll: error parsing regexp: missing ), unterminated "
            "subpattern at position 0: `(`>",
        ),
        *(
            (
                f'{{{{ parseDuration "{arg}" }}}}',
                "<error expanding template: error executing template __alert_Leak: template: "
                f'__alert_Leak:1:115: executing "__alert_Leak" at <parseDuration "{arg}">: '
                f"error calling parseDuration: {message}>",
            )
            for arg, message in [
                ("", "empty duration string"),
                ("1x", 'not a valid duration string: "1x"'),
                ("300y", "duration out of range"),
            ]
        ),
    ],
)
def test_run_time_failure_is_prometheus_error_text(text: str, want: str) -> None:
    """A template that fails when expanded yields Prometheus's error text, not an exception."""
    assert expand(text, TemplateData({}, value=1e21)) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ humanizex $value }}", 'template: __alert_Leak:1: function "humanizex" not defined'),
        ("a\n{{ $nope }}", 'template: __alert_Leak:2: undefined variable "$nope"'),
        ("{{ end }}", "template: __alert_Leak:1: unexpected {{end}}"),
        ("{{ else }}", "template: __alert_Leak:1: unexpected {{else}}"),
        ("{{ if true }}x", "template: __alert_Leak:1: unexpected EOF"),
        ("{{ if }}{{ end }}", "template: __alert_Leak:1: missing value for if"),
        ("{{ }}", "template: __alert_Leak:1: missing value for command"),
        ("{{ $value ", "template: __alert_Leak:1: unclosed action"),
        ('{{ "abc }}', "template: __alert_Leak:1: unterminated quoted string"),
        ("{{ (1 }}", "template: __alert_Leak:1: unclosed left paren"),
        ("{{ 1 | 2 }}", "template: __alert_Leak:1: non executable command in pipeline stage 2"),
        ("{{ nil }}", "template: __alert_Leak:1: nil is not a command"),
        ('{{ "\\xZZ" }}', "template: __alert_Leak:1: invalid syntax"),
        ('{{ "\\400" }}', "template: __alert_Leak:1: invalid syntax"),
        ('{{ "\\ud800" }}', "template: __alert_Leak:1: invalid syntax"),
        ('{{ "\\U00110000" }}', "template: __alert_Leak:1: invalid syntax"),
        ("{{ '\\\"' }}", "template: __alert_Leak:1: invalid syntax"),
        ("{{ break }}", "template: __alert_Leak:1: {{break}} outside {{range}}"),
        (
            "{{ if 1 }}{{ continue }}{{ end }}",
            "template: __alert_Leak:1: {{continue}} outside {{range}}",
        ),
        (
            '{{ define "x" }}{{ $labels }}{{ end }}',
            'template: __alert_Leak:1: undefined variable "$labels"',
        ),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    """Syntax Go rejects, and syntax the engine does not run, fail at load with Go's message."""
    with pytest.raises(RuleError) as info:
        compile_template(text, "Leak")
    assert str(info.value) == message


@given(st.text(alphabet="{}$.|()\"'\\ abcxuU1-/*\n", max_size=40))
def test_hostile_templates_never_crash(text: str) -> None:
    """Any text either fails to compile with RuleError or expands to a string."""
    try:
        tmpl = compile_template(text, "Fuzz")
    except RuleError:
        return
    assert isinstance(tmpl.expand(DATA), str)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (-0.0, "-0"),
        (100.0, "100"),
        (math.inf, "+Inf"),
        (math.nan, "NaN"),
    ],
)
def test_go_float_prints_like_fmt_sprint(value: float, want: str) -> None:
    """Floats print as Go's fmt.Sprint: shortest digits, exponent outside [1e-4, 1e6)."""
    assert go_float(value) == want


def test_go_format_e_quote_title_and_sprintf_markers() -> None:
    """FormatFloat 'E', strconv.Quote, strings.Title and Sprintf's error markers are Go's."""
    assert [go_format_e(v, upper=True) for v in (1.0, 0.25, 300.0, -math.inf)] == [
        "1E+00",
        "2.5E-01",
        "3E+02",
        "-Inf",
    ]
    assert go_format_e(1234.5) == "1.2345e+03"
    assert go_quote('a"b\\c\n\x01é\u2028') == '"a\\"b\\\\c\\n\\x01é\\u2028"'
    assert go_title("hello wORLD foo_bar a-b 1x é") == "Hello WORLD Foo_bar A-B 1x É"
    assert go_sprintf("%d %s", [3]) == "3 %!s(MISSING)"
    assert go_sprintf("%d", [3, 4.5]) == "3%!(EXTRA float64=4.5)"
    assert go_sprintf("%z %", [1]) == "%!z(int=1) %!(NOVERB)"
    assert go_sprintf("%t %x %X %c %05.1f %+d", [True, "hi", 255, 65, 2.25, 5]) == (
        "true 6869 FF A 002.2 +5"
    )


def _fake_query(text: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    if text == "bad":
        raise RuleError("1:4: parse error: unexpected end of input")
    rows: list[tuple[tuple[tuple[str, str], ...], float]] = [
        ((("__name__", "up"), ("job", "b")), 2.0),
        ((("__name__", "up"), ("job", "a")), 4.0),
    ]
    return rows if text == "up" else []


QUERY_DATA = TemplateData(
    labels={"job": "a"},
    value=3.0,
    external_url="https://prom.example.com/sub/p%20x",
    query=_fake_query,
    manager_url="https://prom.example.com/sub/p%20x",
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{{ range query "up" }}{{ .Labels.job }}={{ .Value }};{{ end }}', "b=2;a=4;"),
        ('{{ query "up" | first | value }} {{ query "up" | first | label "job" }}', "2 b"),
        ('[{{ query "up" | first | strvalue }}]', "[]"),
        ('{{ range query "up" | sortByLabel "job" }}{{ label "job" . }}{{ end }}', "ab"),
        ('{{ query "up" | first }}', "{map[__name__:up job:b] 2}"),
        ('{{ (query "up" | first).Labels.job }} {{ len (query "up") }}', "b 2"),
        ('{{ index (query "up") 1 | value }}', "4"),
        ('{{ range $i, $s := query "up" }}{{ $i }}{{ break }}{{ end }}', "0"),
        ('{{ with query "none" }}x{{ else }}empty{{ end }}', "empty"),
        ("{{ externalURL }} {{ pathPrefix }}", "https://prom.example.com/sub/p%20x /sub/p x"),
        ('{{ define "t" }}{{ .arg0 }}+{{ .arg1 }}{{ end }}{{ template "t" args 1 "x" }}', "1+x"),
        ('{{ block "b" $value }}v={{ . }}{{ end }}', "v=3"),
        (
            '{{ html "<a href=\'x\'>" }} {{ js "a\'<" }} {{ slice "abcdef" 2 4 }}',
            "&lt;a href=&#39;x&#39;&gt; a\\'\\u003C cd",
        ),
        ("{{ (toTime 1700000000.5).Unix }}", "1700000000"),
    ],
)
def test_query_and_named_templates(text: str, want: str) -> None:
    """query and its helpers, named templates and Go's html/js/slice expand as in Prometheus."""
    assert expand(text, QUERY_DATA) == want


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        (
            '{{ query "none" | first }}',
            "error calling first: first() called on vector with no elements>",
        ),
        ('{{ query "bad" }}', "error calling query: 1:4: parse error: unexpected end of input>"),
        ('{{ template "nope" }}', 'template "nope" not defined>'),
    ],
)
def test_query_failures_read_as_prometheus(text: str, tail: str) -> None:
    """A failing query function leaves Prometheus's error text in the annotation."""
    assert expand(text, QUERY_DATA).endswith(tail)


def test_without_a_manager_url_the_url_functions_fail_as_in_promtool() -> None:
    """promtool's rule manager has no external URL: Go's nil-pointer error, as promtool prints."""
    data = TemplateData(labels={}, manager_url=None)
    assert expand("{{ pathPrefix }}", data).endswith(
        "error calling pathPrefix: runtime error: invalid memory address or nil pointer "
        "dereference>"
    )
    assert expand('{{ query "up" }}', data).endswith(
        "error calling query: no query engine available>"
    )
