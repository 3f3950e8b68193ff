"""Config loading: defaults, environment, and one exact line per problem with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import config_keys

from sidecar import __version__
from sidecar.cli import main
from sidecar.core.config import Config
from sidecar.core.config_fields import ByteSize, Duration, Matching, Secret
from sidecar.core.config_http import HostName
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.core.validation import Problem
from sidecar.inject.settings import Quantity, Tag

TOKEN_ENV = {"LEAK_SIDECAR_TOKEN": "s3cret"}


def test_shipped_config_is_valid_and_equals_the_defaults() -> None:
    """config/sidecar.yaml validates and says what the built-in defaults say."""
    shipped = load(Path(__file__).parent.parent / "config" / "sidecar.yaml", TOKEN_ENV)
    assert shipped == load(None, TOKEN_ENV)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1d", 86400.0), ("0", 0.0)],
)
def test_duration_fields_read_prometheus_syntax_as_seconds(text: str, seconds: float) -> None:
    """A duration field takes Prometheus's syntax, a bare 0 included, and holds seconds."""
    assert Duration.parse(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "5 s", "1m1h", "-5s", "1.5s", 5, None, True])
def test_duration_fields_refuse_everything_else(bad: object) -> None:
    """Bare numbers, wrong order, signs and fractions are not durations."""
    with pytest.raises(ValueError, match=r"^expected a duration such as 15s") as info:
        Duration.parse(bad)
    assert str(info.value) == f"expected a duration such as 15s, 10m or 1h30m, got {bad!r}"


def test_zero_is_refused_only_where_a_field_must_be_positive(tmp_path: Path) -> None:
    """A bare '0' is a duration: a cooldown may be zero, an interval may not."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("actions:\n  cooldowns:\n    cache_flush: '0'\n")
    assert load(cfg, TOKEN_ENV).actions.cooldowns["cache_flush"] == 0.0
    cfg.write_text("scrape:\n  interval: '0'\n")
    with pytest.raises(ConfigError) as info:
        load(cfg, TOKEN_ENV)
    assert info.value.problems == ["scrape.interval: expected a duration > 0, got '0'"]


def test_a_duration_past_292_years_is_out_of_range(tmp_path: Path) -> None:
    """Prometheus's limit holds in config too, with its own message."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("actions:\n  dedupe_ttl: 300y\n")
    with pytest.raises(ConfigError) as info:
        load(cfg, TOKEN_ENV)
    assert info.value.problems == ["actions.dedupe_ttl: expected a duration up to 292y, got '300y'"]


BAD_CONFIGS = [
    ("scrape:\n  bogus: 1\n", ["scrape.bogus: unknown key"]),
    (
        "scrape:\n  interval: 5\n",
        ["scrape.interval: expected a duration such as 15s, 10m or 1h30m, got 5"],
    ),
    (
        "scrape:\n  interval: 5s\n  timeout: 5s\n",
        ["scrape.timeout: must be below scrape.interval (5s), got 5s"],
    ),
    (
        "app:\n  base_url: ftp://app:21\n",
        ["app.base_url: expected an http:// or https:// URL with a host, got 'ftp://app:21'"],
    ),
    (
        "app:\n  expvar_path: debug/vars\n",
        ["app.expvar_path: expected a path starting with '/', got 'debug/vars'"],
    ),
    (
        "server:\n  listen: 9120\n",
        ["server.listen: expected str, got 9120"],
    ),
    (
        "breaker:\n  min_open: 10m\n  max_open: 1m\n",
        ["breaker.max_open: must not be below breaker.min_open (10m), got 1m"],
    ),
    (
        "scrape:\n  max_object_keys: 0\n",
        ["scrape.max_object_keys: expected int >= 1, got 0"],
    ),
    (
        "rules:\n  external_labels:\n    pod: ${NO_SUCH_VAR}\n",
        ["rules.external_labels.pod: environment variable NO_SUCH_VAR is not set"],
    ),
    # Two problems in one file: the first is reported, as Prometheus reports its own.
    (
        "rules:\n  evaluation_interval: 0s\nbreaker:\n  check_interval: 0s\n",
        ["rules.evaluation_interval: expected a duration > 0, got '0s'"],
    ),
    ("- a\n- b\n", ["config: expected a mapping at the top of {path}, got list"]),
    ("token: abc\n", ["token: unknown key (set env LEAK_SIDECAR_TOKEN or server.token_file)"]),
    (
        "scrape:\n  interval: 1x\napp:\n  nope: true\n",
        ["scrape.interval: expected a duration such as 15s, 10m or 1h30m, got '1x'"],
    ),
    (
        "server:\n  listen: 0.0.0.0:9120\n  shutdown_grace: 1s\nactions:\n  drain_timeout: 5s\n",
        ["server.shutdown_grace: must not be below actions.drain_timeout (5s), got 1s"],
    ),
    ("breaker:\n  dry_run: 1\n", ["breaker.dry_run: expected bool, got 1"]),
    ("log:\n  level: loud\n", ["log.level: invalid enum value 'loud'"]),
    ("actions:\n  routes: [{}]\n", ["actions.routes.0.action: required key is missing"]),
    ("state_dir: ''\n", ["state_dir: expected a directory path, got ''"]),
    (
        "scrape:\n  max_body_bytes: 1.5\n",
        ["scrape.max_body_bytes: expected a byte size such as 16MiB or 512KB, got 1.5"],
    ),
    (
        "scrape:\n  max_body_bytes: '0'\n",
        ["scrape.max_body_bytes: expected a byte size > 0, got '0'"],
    ),
    (
        "fleet:\n  forward:\n    allow: [10.0.0.1/8]\n",
        [
            "fleet.forward.allow: expected a network such as 10.0.0.0/8 (no host bits set), "
            "got '10.0.0.1/8': 10.0.0.1/8 has host bits set"
        ],
    ),
]


@pytest.mark.parametrize(("text", "lines"), BAD_CONFIGS)
def test_bad_config_prints_one_line_per_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, lines: list[str]
) -> None:
    """check-config --strict-env (what run sees) names each bad key path and value, one
    line each, and exits 2."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["check-config", "--strict-env", str(path)], env=TOKEN_ENV) == 2
    assert capsys.readouterr().err.splitlines() == [line.format(path=path) for line in lines]


def test_missing_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config file that does not exist is exit 2 with its name."""
    assert main(["check-config", str(tmp_path / "nope.yaml")], env=TOKEN_ENV) == 2
    assert capsys.readouterr().err == f"config: file not found: {tmp_path / 'nope.yaml'}\n"


def test_invalid_yaml_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Broken YAML is one line with its position, exit 2."""
    path = tmp_path / "c.yaml"
    path.write_text("scrape: [1,\n")
    assert main(["check-config", str(path)], env=TOKEN_ENV) == 2
    assert capsys.readouterr().err == (
        f"config: invalid YAML in {path} at line 2, column 1: "
        "expected the node content, but found '<stream end>'\n"
    )


def test_empty_token_is_an_error_never_a_disabled_feature() -> None:
    """An empty LEAK_SIDECAR_TOKEN is refused rather than turning auth off."""
    with pytest.raises(ConfigError) as info:
        load(None, {"LEAK_SIDECAR_TOKEN": "  "})
    assert info.value.problems == ["env LEAK_SIDECAR_TOKEN: empty token; unset it or give a token"]


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    """A token file holding nothing is refused."""
    f = tmp_path / "token"
    f.write_text("\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server:\n  token_file: {f}\n")
    with pytest.raises(ConfigError) as info:
        load(cfg, {})
    assert info.value.problems == [f"server.token_file: {f} is empty"]


def test_token_file_is_read_and_never_printed(tmp_path: Path) -> None:
    """The token comes from the file, and its repr hides it."""
    f = tmp_path / "token"
    f.write_text("abc123\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server:\n  token_file: {f}\n")
    loaded = load(cfg, {})
    assert loaded.token is not None
    assert loaded.token.get_secret_value() == "abc123"
    assert "abc123" not in repr(loaded)


def test_token_from_env_and_file_together_is_ambiguous(tmp_path: Path) -> None:
    """Two token sources at once are refused, naming both."""
    f = tmp_path / "token"
    f.write_text("abc")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server:\n  token_file: {f}\n")
    with pytest.raises(ConfigError) as info:
        load(cfg, TOKEN_ENV)
    assert info.value.problems == [
        "server.token_file: set together with env LEAK_SIDECAR_TOKEN; choose one"
    ]


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_opt_out(tmp_path: Path) -> None:
    """No token on 0.0.0.0 is refused unless allow_unauthenticated says so in so many words."""
    with pytest.raises(ConfigError) as info:
        load(None, {})
    assert info.value.problems == [
        "server.listen: 0.0.0.0:9120 is beyond loopback and no token is set "
        "(env LEAK_SIDECAR_TOKEN or server.token_file); "
        "set server.allow_unauthenticated: true to accept unauthenticated actions"
    ]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  allow_unauthenticated: true\n")
    assert load(cfg, {}).token is None
    cfg.write_text("server:\n  listen: 127.0.0.1:9120\n")
    assert load(cfg, {}).server.listen == "127.0.0.1:9120"


def test_environment_references_expand(tmp_path: Path) -> None:
    """${VAR} in a string value takes the environment's value, for Downward API labels."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rules:\n  external_labels:\n    pod: ${POD_NAME}\n    ns: prod-${NS}\n")
    loaded = load(cfg, {**TOKEN_ENV, "POD_NAME": "orders-1", "NS": "eu"})
    assert loaded.rules.external_labels == {"pod": "orders-1", "ns": "prod-eu"}


def test_run_with_bad_config_from_env_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` reads LEAK_SIDECAR_CONFIG and refuses to start on a bad file."""
    path = tmp_path / "bad.yaml"
    path.write_text("scrape:\n  bogus: 1\n")
    env = {**TOKEN_ENV, "LEAK_SIDECAR_CONFIG": str(path)}
    assert main(["run"], env=env) == 2
    assert capsys.readouterr().err == "scrape.bogus: unknown key\n"


def _key_lines(lines: list[str]) -> dict[str, int]:
    """The dotted key path of every `key:` line of a block-style YAML file."""
    out: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for n, line in enumerate(lines):
        m = re.match(r"^( *)([a-z_]+):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        out[".".join(k for _, k in stack)] = n
    return out


def test_shipped_config_documents_every_key() -> None:
    """Every config key appears in config/sidecar.yaml, under a comment saying why."""
    path = Path(__file__).parent.parent / "config" / "sidecar.yaml"
    lines = path.read_text().splitlines()
    where = _key_lines(lines)
    for key in config_keys(Config):
        if key == "token":  # from the environment or server.token_file, never the file
            continue
        assert key in where, f"{key} is not in config/sidecar.yaml"
        # Keys of one group (e.g. the three endpoint paths) may share their comment.
        n = where[key] - 1
        while n >= 0 and lines[n].strip() and not lines[n].strip().startswith("#"):
            n -= 1
        assert n >= 0, f"{key} has no comment"
        assert lines[n].strip().startswith("#"), f"{key} has no comment"


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """`leak-sidecar --version` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"leak-sidecar {__version__}\n"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """Rule globs, files and the state dir named relatively resolve against the config
    file's directory, as in Prometheus; absolute ones stay as written."""
    (tmp_path / "token").write_text("s3cret\n")
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(
        "rules:\n  files: [rules/*.yml, /abs/*.yml]\n"
        "app:\n  memory_limit_file: limit\n"
        "server:\n  token_file: token\n"
        "state_dir: state\n"
    )
    loaded = load(cfg, {})
    assert loaded.rules.files == [f"{tmp_path}/rules/*.yml", "/abs/*.yml"]
    assert loaded.app.memory_limit_file == tmp_path / "limit"
    assert loaded.server.token_file == tmp_path / "token"
    assert loaded.state_dir == tmp_path / "state"
    assert loaded.token is not None
    assert loaded.token.get_secret_value() == "s3cret"


def test_rules_files_unset_means_the_pack_and_empty_means_none(tmp_path: Path) -> None:
    """No rules.files key is the packaged pack; `files: []` is kept as fleet mode's choice."""
    from sidecar.rules.files import pack_pattern, rule_patterns  # noqa: PLC0415

    assert load(None, TOKEN_ENV).rules.files is None
    assert rule_patterns(None) == [pack_pattern()]
    assert Path(pack_pattern()).parent.joinpath("leaks.yml").is_file()
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text("rules:\n  files: []\n")
    assert rule_patterns(load(cfg, TOKEN_ENV).rules.files) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (5, 5),
        ("10", 10),
        ("16MiB", 16 * 1024 * 1024),
        ("16 MiB", 16 * 1024 * 1024),
        ("512KB", 512_000),
        ("1.5 GB", 1_500_000_000),
        (" 10 kb", 10_000),
        ("10k", 10_000),
        ("10 b", 10),
        (".5kb", 500),
        ("8kbit", 1000),
        ("16MiB trailing", 16 * 1024 * 1024),
    ],
)
def test_byte_sizes_read_as_before(text: object, size: int) -> None:
    """A size is an int or a number with an SI or IEC unit, in any case, as the config
    has always read it."""
    assert ByteSize.parse(text) == size
    assert type(ByteSize.parse(text)) is int  # a plain int, as every encoder writes it


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (0, "expected a byte size > 0, got 0"),
        (-5, "expected a byte size > 0, got -5"),
        ("0", "expected a byte size > 0, got '0'"),
        (True, "expected a byte size such as 16MiB or 512KB, got True"),
        (1.5, "expected a byte size such as 16MiB or 512KB, got 1.5"),
        ("", "expected a byte size such as 16MiB or 512KB, got ''"),
        ("-5", "expected a byte size such as 16MiB or 512KB, got '-5'"),
        ("+5", "expected a byte size such as 16MiB or 512KB, got '+5'"),
        ("1e3", "expected a byte unit such as KB, MiB or GB, got 'e3'"),
        ("5xb", "expected a byte unit such as KB, MiB or GB, got 'xb'"),
    ],
)
def test_byte_sizes_refuse_everything_else(bad: object, message: str) -> None:
    """Zero, booleans, floats and unknown units are refused, saying what came."""
    with pytest.raises(ValueError, match=r"^expected a byte") as info:
        ByteSize.parse(bad)
    assert str(info.value) == message


def test_a_secret_never_shows_but_compares() -> None:
    """A Secret's repr and str hide it; two of the same value are equal (reload compares)."""
    secret = Secret.parse("hunter2")
    assert (repr(secret), str(secret)) == ("Secret('**********')", "**********")
    assert secret.get_secret_value() == "hunter2"
    assert secret == Secret("hunter2") != Secret("other")
    with pytest.raises(ValueError, match=r"^expected str, got int$"):
        Secret.parse(12345)


def test_two_loads_are_equal_and_frozen(tmp_path: Path) -> None:
    """Loading one file twice gives equal configs (a reload compares them), which
    cannot be changed in place."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "scrape:\n  max_body_bytes: 8MiB\n"
        "  metric_relabel_configs: [{source_labels: [a], regex: 'x+', target_label: b}]\n"
    )
    one, two = load(cfg, TOKEN_ENV), load(cfg, TOKEN_ENV)
    assert one.scrape.metric_relabel_configs[0].compiled is not None
    assert one == two
    assert one.scrape.max_body_bytes == 8 * 1024 * 1024
    with pytest.raises(AttributeError):
        one.scrape.interval = 1.0  # type: ignore[misc, assignment]  # frozen, on purpose


def test_strict_types_refuse_lookalikes() -> None:
    """A string of digits is not a number and 1 is not true; a path is the one lax type."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"store": {"max_series": "100"}}, "store.max_series: expected int, got '100'"),
        ({"breaker": {"dry_run": "true"}}, "breaker.dry_run: expected bool, got 'true'"),
        ({"app": {"memory_limit_file": 5}}, "app.memory_limit_file: expected a path, got 5"),
        (
            {"app": {"http_config": {"tls_config": {"ca_file": ["ca.pem"]}}}},
            "app.http_config.tls_config.ca_file: expected a path, got ['ca.pem']",
        ),
        (
            {"app": {"http_config": {"authorization": {"credentials_file": 7}}}},
            "app.http_config.authorization.credentials_file: expected a path, got 7",
        ),
    ]
    for raw, line in cases:
        with pytest.raises(msgspec.ValidationError) as info:
            Config.validate({**raw, "token": "t"})
        assert Problem.of(info.value, raw).line() == line


def test_values_are_plain_builtins_every_encoder_writes(tmp_path: Path) -> None:
    """A duration is a float, a URL a str, a size an int, a path a Path: a config value
    can go into a journal entry or a JSON body as it is."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scrape:\n  interval: 30s\n  max_body_bytes: 8MiB\nstate_dir: state\n")
    loaded = load(cfg, TOKEN_ENV)
    assert [type(v) for v in (loaded.scrape.interval, loaded.app.base_url)] == [float, str]
    assert [type(v) for v in (loaded.scrape.max_body_bytes, loaded.state_dir)] == [
        int,
        type(Path()),
    ]
    assert msgspec.json.decode(msgspec.json.encode(loaded.scrape))["interval"] == 30.0
    assert msgspec.json.decode(msgspec.json.encode(loaded.actions))["cooldowns"] == {
        "cache_flush": 300.0,
        "circuit_break": 0.0,
    }


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        (HostName, "app.internal\n", "expected a host name, got 'app.internal\\n'"),
        (Tag, "0.1.0\n", "expected an image tag such as 0.1.0, got '0.1.0\\n'"),
        (Quantity, "64Mi\n", "expected a Kubernetes quantity such as 20m or 64Mi, got '64Mi\\n'"),
    ],
)
def test_a_pattern_type_matches_the_whole_value(
    kind: type[Matching], text: str, problem: str
) -> None:
    """A value that matches but for a trailing newline is refused, with what was expected."""
    assert kind.parse(text.rstrip("\n")) == text.rstrip("\n")
    with pytest.raises(ValueError) as caught:
        kind.parse(text)
    assert str(caught.value) == problem
