"""`leak-sidecar check-config`: the file and what it names, environment warnings, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import main

SHIPPED = Path(__file__).parent.parent / "config" / "sidecar.yaml"
RULE = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"


def _check(
    capsys: pytest.CaptureFixture[str], *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    code = main(["check-config", *args], env={} if env is None else env)
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "a.yml").write_text(RULE)
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text("server:\n  listen: 127.0.0.1:9120\nstate_dir: state\n" + text)
    return cfg


def test_the_shipped_config_passes_without_a_token_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No token in the checking environment is a warning, exit 0; --strict-env makes it 2."""
    code, out, err = _check(capsys, str(SHIPPED))
    assert code == 0, err
    assert out.startswith(f"{SHIPPED}: OK (")
    assert err == (
        "warning: token: env LEAK_SIDECAR_TOKEN is not set here and there is no "
        "server.token_file; run refuses to listen on 0.0.0.0:9120 without one\n"
    )
    code, _, err = _check(capsys, "--strict-env", str(SHIPPED))
    assert code == 2
    assert err.startswith("server.listen: 0.0.0.0:9120 is beyond loopback and no token is set")


def test_an_unset_variable_is_a_warning_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """${POD_NAME} missing here warns with its key; with --strict-env it is exit 2."""
    cfg = _config(tmp_path, "rules:\n  external_labels:\n    pod: ${POD_NAME}\n")
    code, _, err = _check(capsys, str(cfg))
    assert code == 0
    assert "warning: rules.external_labels.pod: environment variable POD_NAME is not set" in err
    code, _, err = _check(capsys, "--strict-env", str(cfg))
    assert code == 2
    assert err == "rules.external_labels.pod: environment variable POD_NAME is not set\n"


def test_a_glob_matching_nothing_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rules.files glob that matches no file is named, resolved against the config's dir."""
    cfg = _config(tmp_path, "rules:\n  files: [nope/*.yml]\n")
    code, _, err = _check(capsys, str(cfg))
    assert code == 1
    assert f"rules.files: {tmp_path}/nope/*.yml matches no file\n" in err


def test_a_broken_rule_file_is_exit_1_in_promtools_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each rule file is parsed as check-rules does; its problems name file, line, rule."""
    cfg = _config(tmp_path, "rules:\n  files: [rules/*.yml]\n")
    (tmp_path / "rules" / "b.yml").write_text(RULE.replace("up == 0", "sum(x"))
    code, _, err = _check(capsys, str(cfg))
    assert code == 1
    assert err.splitlines()[-1] == (
        f'rules.files: {tmp_path}/rules/b.yml: 5:15: group "g", rule 1, "A": could not '
        "parse expression: 1:6: parse error: unclosed left parenthesis"
    )


def test_zero_rules_outside_fleet_mode_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files that hold no rule would keep /readyz at 503; `files: []` is fleet mode, valid."""
    (tmp_path / "empty.yml").write_text("groups: []\n")
    code, _, err = _check(capsys, str(_config(tmp_path, "rules:\n  files: [empty.yml]\n")))
    assert code == 1
    assert "rules.files: no rules loaded, /readyz would answer 503" in err
    code, out, _ = _check(capsys, str(_config(tmp_path, "rules:\n  files: []\n")))
    assert code == 0
    assert out.endswith(": OK (0 rules)\n")


def test_a_missing_memory_limit_file_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """app.memory_limit_file is read as run reads it, relative to the config file."""
    cfg = _config(tmp_path, "app:\n  memory_limit_file: limit\n")
    code, _, err = _check(capsys, str(cfg))
    assert code == 1
    assert f"app.memory_limit_file: cannot read {tmp_path}/limit: No such file or directory" in err


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("afile", "state_dir: {d}/afile exists and is not a directory"),
        ("afile/sub", "state_dir: cannot create {d}/afile/sub: {d}/afile is not a directory"),
    ],
)
def test_a_state_dir_that_cannot_be_a_directory_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str, problem: str
) -> None:
    """A state_dir that is a file, or lies under one, is named."""
    (tmp_path / "afile").write_text("")
    cfg = _config(tmp_path, f"state_dir: {state}\n")
    code, _, err = _check(capsys, str(cfg))
    assert code == 1
    assert problem.format(d=tmp_path) in err


def test_an_invalid_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A problem in the file itself is exit 2, one key: problem line."""
    cfg = _config(tmp_path, "bogus: 1\n")
    code, _, err = _check(capsys, str(cfg))
    assert (code, err) == (2, "bogus: unknown key\n")


def test_an_unreadable_token_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """server.token_file is read while loading, as run reads it, relative to the config."""
    cfg = _config(tmp_path, "server:\n  token_file: token\n").read_text()
    cfg = cfg.replace("server:\n  listen: 127.0.0.1:9120\n", "", 1)
    path = tmp_path / "sidecar.yaml"
    path.write_text(cfg)
    code, _, err = _check(capsys, str(path))
    assert code == 2
    assert err == f"server.token_file: cannot read {tmp_path}/token: No such file or directory\n"


@pytest.mark.parametrize("command", ["run", "check-config", "check-rules", "test-rules"])
def test_every_subcommand_documents_its_exit_codes(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`leak-sidecar COMMAND --help` has a description and lists its exit codes."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "exit codes: 0 " in out
