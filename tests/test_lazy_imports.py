"""The `run` command's import graph: what only some commands or a capture need stays out."""

from __future__ import annotations

import json
import subprocess
import sys

# Loaded by the commands or the events that need them, never by `leak-sidecar run` itself:
# each costs resident memory in every pod (bench/bench_memory.py measures how much).
NOT_ON_RUN_PATH = (
    "google.protobuf",  # pprof decoding: the first evidence capture loads it
    "re2",  # the first regex (a relabel step, a =~ matcher) loads it; the pack has none
    "sidecar.demo",  # `demo`, `demo-app`
    "sidecar.rules.unittest",  # `test-rules`
    "sidecar.cli.config_check",  # `check-config`
    "sidecar.cli.target_check",  # `check-target`
    "sidecar.cli.inject_cmd",  # `inject`
    "sidecar.inject",  # pod manifests and admission reviews: `inject`, `injector`
    "sidecar.injector",  # the admission webhook server: `injector`
    "sidecar.web.status_render",  # the status page's HTML: its first view loads it
)

_PROBE = """
import json, sys
import sidecar.cli, sidecar.supervisor
print(json.dumps(sorted(sys.modules)))
"""


def _run_path_modules() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout))


def test_run_path_leaves_out_what_only_other_commands_need() -> None:
    """Importing the CLI and the supervisor loads none of the deferred modules."""
    loaded = _run_path_modules()
    assert "sidecar.supervisor" in loaded  # the probe did import the run path
    assert "sidecar.evidence.profile" in loaded  # profile itself is cheap; protobuf is not
    deferred = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_ON_RUN_PATH)]
    assert deferred == []


def test_the_first_profile_decode_loads_protobuf() -> None:
    """The deferred protobuf runtime arrives with the first decode, and decodes."""
    probe = (
        "import sys\n"
        "from sidecar.evidence import profile\n"
        "assert 'google.protobuf' not in sys.modules\n"
        "msg = profile._profile_class()()\n"
        "msg.string_table.extend(['', 'x'])\n"
        "out = profile.decode(msg.SerializeToString(), limit=1 << 20)\n"
        "print(list(out.string_table), 'google.protobuf' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout == "['', 'x'] True\n"
