"""The webhook's decisions on AdmissionReviews as the API server sends them
(tests/fixtures/admission), and the pods its JSONPatches make."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from inject_support import SIDECAR, assert_restricted, validate_pod

from sidecar.cli import main
from sidecar.inject.review import ReviewInvalid, review
from sidecar.inject.settings import InjectSettings

FIXTURES = Path(__file__).parent / "fixtures" / "admission"
SETTINGS = InjectSettings()
INJECTED = "the pod carries leak-sidecar.io/status: injected"


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def _body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _without_object() -> dict[str, Any]:
    data = _fixture("plain-pod.json")
    data["request"]["object"] = None
    return data


def _patched(data: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The pod the API server would store: the JSONPatch applied to the pod it sent."""
    assert response["response"]["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["response"]["patch"]))
    pod: dict[str, Any] = jsonpatch.apply_patch(data["request"]["object"], ops)
    return pod


def _cli(pod: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    """What `leak-sidecar inject` makes of the same pod, written as kubectl would."""
    text = yaml.safe_dump(pod, sort_keys=False)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["inject", *argv], env={}) == 0
    result: dict[str, Any] = yaml.safe_load(out.getvalue())
    return result


@pytest.mark.parametrize(
    ("fixture", "default", "app", "cli"),
    [
        ("deployment-pod.json", False, "orders", []),
        ("annotated-pod.json", False, "orders", []),
        ("two-containers.json", False, "checkout", []),
        ("plain-pod.json", True, "billing", ["--all"]),
    ],
)
def test_the_patch_makes_a_valid_restricted_pod_equal_to_the_cli_s(
    fixture: str,
    default: bool,
    app: str,
    cli: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Applied with jsonpatch, the patch gives a pod that validates against Kubernetes
    1.29, whose sidecar satisfies Pod Security restricted, whose app containers are as
    they came, and that is what `leak-sidecar inject` gives for the same pod."""
    data = _fixture(fixture)
    outcome = review(_body(data), SETTINGS, default=default)
    assert outcome.decision == "injected"
    assert outcome.response["response"]["uid"] == data["request"]["uid"]
    assert outcome.response["response"]["allowed"] is True
    pod = _patched(data, outcome.response)
    validate_pod(pod)
    assert_restricted(pod["spec"])
    sent = data["request"]["object"]
    assert pod["spec"]["containers"] == sent["spec"]["containers"]
    memory = pod["spec"]["volumes"][-2]["downwardAPI"]["items"][0]["resourceFieldRef"]
    assert memory["containerName"] == app
    assert pod["metadata"]["annotations"]["leak-sidecar.io/status"] == "injected"
    assert pod == _cli(sent, monkeypatch, *cli)


def test_the_deployment_pod_gets_the_contract_s_sidecar() -> None:
    """The kubectl-created pod (a ReplicaSet's, no name yet) gets exactly the contract's
    native sidecar after its own init containers (none) and its service account volume."""
    data = _fixture("deployment-pod.json")
    pod = _patched(data, review(_body(data), SETTINGS, default=False).response)
    assert pod["spec"]["initContainers"] == [SIDECAR]
    names = [v["name"] for v in pod["spec"]["volumes"]]
    assert names == [
        "kube-api-access-7xk2p",
        "leak-sidecar-config",
        "leak-sidecar-rules",
        "leak-sidecar-token",
        "leak-sidecar-podinfo",
        "leak-sidecar-state",
    ]


def test_the_annotated_pod_s_settings_are_its_sidecar_s_flags() -> None:
    """expvar-port and dry-run annotations become the sidecar's run flags."""
    data = _fixture("annotated-pod.json")
    pod = _patched(data, review(_body(data), SETTINGS, default=False).response)
    assert pod["spec"]["initContainers"][0]["args"][3:] == [
        "--app.expvar-port=6060",
        "--breaker.dry-run",
    ]


@pytest.mark.parametrize(
    ("fixture", "default", "decision", "reason"),
    [
        ("plain-pod.json", False, "not_opted_in", "no leak-sidecar.io/inject annotation"),
        ("injected-pod.json", False, "already_injected", INJECTED),
        ("injected-pod.json", True, "already_injected", INJECTED),
    ],
)
def test_pods_not_to_inject_are_allowed_unpatched(
    fixture: str, default: bool, decision: str, reason: str
) -> None:
    """Allowed, no patch, and the decision says why."""
    data = _fixture(fixture)
    outcome = review(_body(data), SETTINGS, default=default)
    assert (outcome.decision, outcome.reason) == (decision, reason)
    assert outcome.response == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": data["request"]["uid"], "allowed": True},
    }


def test_a_pod_opted_out_is_left_alone_in_an_enabled_namespace() -> None:
    """inject: "false" wins over the namespace's opt-in."""
    data = _fixture("plain-pod.json")
    data["request"]["object"]["metadata"]["annotations"] = {"leak-sidecar.io/inject": "false"}
    outcome = review(_body(data), SETTINGS, default=True)
    assert (outcome.decision, outcome.reason) == ("opted_out", 'leak-sidecar.io/inject: "false"')
    assert "patch" not in outcome.response["response"]


def test_a_pod_that_cannot_be_injected_is_allowed_with_a_warning() -> None:
    """Two containers and no app named: admitted unchanged, kubectl shows why."""
    data = _fixture("two-containers-unnamed.json")
    outcome = review(_body(data), SETTINGS, default=False)
    why = (
        "cannot tell the app container among 2 (envoy, checkout): name it with the "
        "annotation leak-sidecar.io/app-container"
    )
    assert (outcome.decision, outcome.reason, outcome.pod) == ("refused", why, "checkout-5c8d7b-*")
    assert outcome.response["response"] == {
        "uid": data["request"]["uid"],
        "allowed": True,
        "warnings": [f"leak-sidecar: not injected: {why}"],
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"operation": "UPDATE"}, "UPDATE pods: only pod creations are injected"),
        (
            {"subResource": "ephemeralcontainers"},
            "CREATE pods/ephemeralcontainers: only pod creations are injected",
        ),
        (
            {
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            },
            "CREATE deployments: only pod creations are injected",
        ),
    ],
)
def test_what_is_not_a_pod_creation_is_ignored(change: dict[str, Any], reason: str) -> None:
    """Other resources, subresources and operations are allowed as they came."""
    data = _fixture("deployment-pod.json")
    data["request"].update(change)
    outcome = review(_body(data), SETTINGS, default=True)
    assert (outcome.decision, outcome.reason) == ("ignored", reason)
    assert outcome.response["response"] == {"uid": data["request"]["uid"], "allowed": True}


def test_injecting_the_patched_pod_again_changes_nothing() -> None:
    """The pod the patch made, reviewed again, is already injected."""
    data = _fixture("annotated-pod.json")
    again = copy.deepcopy(data)
    again["request"]["object"] = _patched(
        data, review(_body(data), SETTINGS, default=False).response
    )
    assert review(_body(again), SETTINGS, default=True).decision == "already_injected"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            (FIXTURES / "malformed.json").read_bytes(),
            # Its first problem (the uid is missing too).
            "expected an admission.k8s.io/v1 AdmissionReview with a request: apiVersion: "
            "invalid enum value 'admission.k8s.io/v1beta1'",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"uid": "", "kind": {}, "resource": {}, "operation": "CREATE"}}',
            "expected an admission.k8s.io/v1 AdmissionReview with a request: "
            "request.uid: expected str of length >= 1, got ''",
        ),
        (
            b'{"kind": ',
            "expected an AdmissionReview in JSON: "
            "unexpected end of data: line 1 column 10 (char 9)",
        ),
        (b"[]", "expected an admission.k8s.io/v1 AdmissionReview with a request, got a JSON list"),
        (
            _body(_without_object()),
            "expected request.object to hold the pod being created, got null",
        ),
    ],
)
def test_a_body_that_is_not_a_review_says_what_is_wrong(body: bytes, message: str) -> None:
    """ReviewInvalid, with the first problem in our words; the server answers 400."""
    with pytest.raises(ReviewInvalid) as caught:
        review(body, SETTINGS, default=False)
    assert str(caught.value) == message


_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["leak-sidecar.io/inject", "leak-sidecar.io/app-container", "leak-sidecar.io/expvar-port",
     "leak-sidecar.io/expvar-path", "leak-sidecar.io/rules-configmap", "leak-sidecar.io/dry-run",
     "leak-sidecar.io/status"]
)  # fmt: skip
_VALUES = st.sampled_from(["true", "false", "injected", "app", "6060", "/vars", ""]) | _JSON


@settings(max_examples=300, deadline=None)
@given(
    annotations=st.dictionaries(_KEYS, _VALUES, max_size=4),
    containers=_JSON | st.lists(st.fixed_dictionaries({"name": st.sampled_from(["app", "x"])})),
    metadata=st.sampled_from(["dict", "missing", "list"]),
    spec=st.sampled_from(["dict", "missing", "junk"]),
    default=st.booleans(),
)
def test_no_pod_makes_the_review_fail(
    annotations: dict[str, Any], containers: Any, metadata: str, spec: str, default: bool
) -> None:
    """Whatever the pod holds, the answer is an allowed review for its uid; a patch, when
    there is one, applies to the pod that was sent."""
    data = _fixture("plain-pod.json")
    pod = data["request"]["object"]
    pod["metadata"] = {
        "dict": {"name": "p", "annotations": annotations},
        "missing": None,
        "list": [annotations],
    }[metadata]
    pod["spec"] = {"dict": {"containers": containers}, "missing": None, "junk": containers}[spec]
    outcome = review(_body(data), SETTINGS, default=default)
    assert outcome.response["response"]["uid"] == data["request"]["uid"]
    assert outcome.response["response"]["allowed"] is True
    if outcome.decision == "injected":
        patched = _patched(data, outcome.response)
        assert patched["metadata"]["annotations"]["leak-sidecar.io/status"] == "injected"


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | _JSON.map(lambda doc: json.dumps(doc).encode()))
def test_no_body_makes_the_review_crash(body: bytes) -> None:
    """Bytes that are not a review raise ReviewInvalid, never anything else."""
    with pytest.raises(ReviewInvalid):
        review(body, SETTINGS, default=True)
