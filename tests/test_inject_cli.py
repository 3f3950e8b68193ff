"""``leak-sidecar inject``: manifests in, the opted-in workloads injected out."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from inject_support import SIDECAR, assert_restricted, validate_pod

from sidecar.cli import main
from sidecar.core.errors import InjectError
from sidecar.inject.manifests import TEMPLATES, inject_manifests
from sidecar.inject.pod import inject
from sidecar.inject.settings import InjectSettings

OPT_IN = {"leak-sidecar.io/inject": "true"}


def _template(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": "orders"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {
            "containers": [{"name": "orders", "image": "registry.example/orders:1.4.2"}],
            "restartPolicy": "OnFailure",
        },
    }


def _workload(kind: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A valid object of ``kind`` whose pod carries ``annotations``."""
    template = _template(annotations)
    api = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    obj: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": {"name": "orders"}}
    if kind == "Pod":
        obj["metadata"].update(template["metadata"])
        obj["spec"] = template["spec"]
        return obj
    if kind not in ("Job", "CronJob"):
        template["spec"]["restartPolicy"] = "Always"
    spec: dict[str, Any] = {"template": template}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        spec["selector"] = {"matchLabels": {"app": "orders"}}
    if kind == "StatefulSet":
        spec["serviceName"] = "orders"
    if kind == "CronJob":
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": spec}}
    obj["spec"] = spec
    return obj


def _pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    node = obj
    for key in TEMPLATES[obj["kind"]]:
        node = node[key]
    return node


def _run(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(["inject", *argv], env={})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_workload_kind_gets_its_pod_injected(
    kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod template that opts in is injected as the function does it; the object
    stays valid for Kubernetes 1.29 and the sidecar satisfies Pod Security restricted."""
    obj = _workload(kind, OPT_IN)
    code, out, err = _run([], capsys, monkeypatch, stdin=yaml.safe_dump(obj))
    assert code == 0, err
    (result,) = yaml.safe_load_all(out)
    assert _pod_of(result) == inject(_pod_of(obj), InjectSettings())
    assert _pod_of(result)["spec"]["initContainers"] == [SIDECAR]
    # Outside its pod template, the object is as it was (a Pod is its own template).
    outside = {"spec"} if kind != "Pod" else {"spec", "metadata"}
    assert {k: v for k, v in result.items() if k not in outside} == {
        k: v for k, v in obj.items() if k not in outside
    }
    validate_pod(result)
    assert_restricted(_pod_of(result)["spec"])
    assert err == f"injected: {kind} orders\n"


def test_a_list_has_its_opted_in_items_injected(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubectl get -o yaml gives a List: each item is looked at on its own."""
    listing: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [_workload("Deployment"), _workload("StatefulSet", OPT_IN)],
        "metadata": {"resourceVersion": ""},
    }
    code, out, _ = _run([], capsys, monkeypatch, stdin=yaml.safe_dump(listing))
    assert code == 0
    result = yaml.safe_load(out)
    assert result["items"][0] == listing["items"][0]
    assert _pod_of(result["items"][1]) == inject(_pod_of(listing["items"][1]), InjectSettings())


MIXED = """\
# shop, as deployed
apiVersion: v1
kind: ConfigMap
metadata: {name: orders-config}   # flow style, kept
data:
  level: "debug"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata:
      labels: {app: orders}
      annotations: {leak-sidecar.io/inject: "true"}
    spec:
      containers: [{name: orders, image: "registry.example/orders:1.4.2"}]
---
# not opted in
apiVersion: apps/v1
kind: Deployment
metadata: {name: billing}
spec:
  selector: {matchLabels: {app: billing}}
  template:
    metadata: {labels: {app: billing}}
    spec:
      containers: [{name: billing, image: "registry.example/billing:2.0.0"}]
"""


def test_what_does_not_opt_in_passes_through_byte_for_byte(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comments, flow style and quoting of every other document are kept exactly."""
    code, out, _ = _run([], capsys, monkeypatch, stdin=MIXED)
    assert code == 0
    first, _, rest = MIXED.partition("---\n")
    billing = rest.partition("---\n")[2]
    assert out.startswith(first + "---\n")
    assert out.endswith("---\n" + billing)
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in docs] == ["orders-config", "orders", "billing"]
    assert docs[1]["spec"]["template"]["metadata"]["annotations"]["leak-sidecar.io/status"] == (
        "injected"
    )


def test_nothing_opted_in_is_the_input_unchanged(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an opt-in, the output is the input, byte for byte."""
    text = MIXED.replace('leak-sidecar.io/inject: "true"', 'leak-sidecar.io/inject: "false"')
    code, out, err = _run([], capsys, monkeypatch, stdin=text)
    assert (code, out, err) == (0, text, "")


def test_injecting_twice_is_injecting_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output of inject, injected again with --all, comes out unchanged."""
    _, once, _ = _run(["--all"], capsys, monkeypatch, stdin=MIXED)
    code, twice, err = _run(["--all"], capsys, monkeypatch, stdin=once)
    assert (code, twice, err) == (0, once, "")


def test_all_injects_every_workload_not_opted_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--all takes every workload except the ones annotated "false"."""
    text = MIXED + "---\n" + yaml.safe_dump(_workload("Job", {"leak-sidecar.io/inject": "false"}))
    code, out, err = _run(["--all"], capsys, monkeypatch, stdin=text)
    assert code == 0
    assert err == "injected: Deployment orders\ninjected: Deployment billing\n"
    assert out.endswith(yaml.safe_dump(_workload("Job", {"leak-sidecar.io/inject": "false"})))


def test_files_are_read_in_order_and_joined_as_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several files become one stream; '-' is stdin."""
    a = tmp_path / "a.yaml"
    a.write_text("kind: Namespace\napiVersion: v1\nmetadata: {name: shop}", encoding="utf-8")
    code, out, _ = _run([str(a), "-"], capsys, monkeypatch, stdin="kind: Secret\n")
    assert code == 0
    assert out == "kind: Namespace\napiVersion: v1\nmetadata: {name: shop}\n---\nkind: Secret\n"


def test_a_settings_file_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--inject.config is the injector's settings file: classic mode here."""
    settings = tmp_path / "inject.yaml"
    settings.write_text("mode: classic\n", encoding="utf-8")
    obj = _workload("Deployment", OPT_IN)
    code, out, _ = _run(
        [f"--inject.config={settings}"], capsys, monkeypatch, stdin=yaml.safe_dump(obj)
    )
    assert code == 0
    pod = _pod_of(yaml.safe_load(out))
    assert [c["name"] for c in pod["spec"]["containers"]] == ["orders", "leak-sidecar"]


def _two_containers(annotations: dict[str, Any]) -> str:
    obj = _workload("Deployment", annotations)
    obj["metadata"]["namespace"] = "shop"
    _pod_of(obj)["spec"]["containers"].append({"name": "envoy", "image": "envoy:1.30"})
    return "kind: ConfigMap\napiVersion: v1\n---\n" + yaml.safe_dump(obj)


@pytest.mark.parametrize(
    ("argv", "stdin", "code", "message"),
    [
        (
            [],
            _two_containers(OPT_IN),
            1,
            "stdin: document 2 (Deployment shop/orders): cannot tell the app container among "
            "2 (orders, envoy): name it with the annotation leak-sidecar.io/app-container\n",
        ),
        (
            [],
            _two_containers({"leak-sidecar.io/inject": True}),
            1,
            "stdin: document 2 (Deployment shop/orders): annotation leak-sidecar.io/inject: "
            'expected the string "true" or "false" (quoted in YAML), got True\n',
        ),
        (
            [],
            "kind: List\napiVersion: v1\nitems:\n- "
            + _two_containers(OPT_IN).split("---\n")[1].replace("\n", "\n  "),
            1,
            "stdin: document 1, item 1 (Deployment shop/orders): cannot tell the app container "
            "among 2 (orders, envoy): name it with the annotation leak-sidecar.io/app-container\n",
        ),
        (
            [],
            "kind: Pod\nmetadata: {name: [\n",
            2,
            "stdin: invalid YAML at line 3, column 1: expected the node content, "
            "but found '<stream end>'\n",
        ),
        (["nope.yaml"], "", 2, "nope.yaml: cannot read: No such file or directory\n"),
        (["--inject.config=nope.yaml"], "", 2, "inject.config: nope.yaml: file not found\n"),
    ],
)
def test_a_refusal_or_bad_input_writes_nothing_and_says_why(
    argv: list[str],
    stdin: str,
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """One line names the input, the document and the problem; stdout stays empty."""
    monkeypatch.chdir(tmp_path)
    assert _run(argv, capsys, monkeypatch, stdin=stdin) == (code, "", message)


def test_bytes_that_are_not_utf8_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary file is not YAML: exit 2, where it went wrong."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"kind: Pod\n\xff\xfe")))
    assert main(["inject"], env={}) == 2
    assert capsys.readouterr() == (
        "",
        "stdin: expected UTF-8 YAML, got a byte it cannot hold at offset 10\n",
    )


_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=6)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["kind", "spec", "template", "metadata", "x"]), inner, max_size=3
        )
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(
        _JSON | st.sampled_from(list(TEMPLATES)).map(lambda k: _workload(k, OPT_IN)), max_size=3
    ),
    text=st.text(max_size=40),
)
def test_no_input_makes_inject_crash(docs: list[Any], text: str) -> None:
    """Any YAML stream, or any text, is injected (as many documents out as in), passed
    through, or refused with an InjectError (ManifestError for what is not YAML)."""
    for stream in (yaml.safe_dump_all(docs), text):
        try:
            out = inject_manifests(stream, InjectSettings(), inject_all=True, source="stdin")
        except InjectError:
            continue
        before = list(yaml.safe_load_all(stream))
        after = list(yaml.safe_load_all(out.text))
        assert len(after) == len(before)
        if not out.objects:
            assert after == before
