"""The injection function and its settings file (``sidecar.inject``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from inject_support import (
    FLAG_ANNOTATIONS,
    SIDECAR,
    assert_restricted,
    classic,
    pod,
    validate_pod,
    volumes,
)

from sidecar.core.errors import ConfigError, InjectError
from sidecar.inject.pod import inject, injected, wants
from sidecar.inject.settings import InjectSettings, load_settings

DEFAULTS = InjectSettings()


def test_a_pod_gets_the_native_sidecar_of_the_contract() -> None:
    """The sidecar is appended to initContainers with restartPolicy Always, its volumes
    after the pod's own, and the pod is marked injected; nothing else changes."""
    before = pod("app", annotations={"team": "shop"})
    after = inject(before, DEFAULTS)
    assert after["spec"]["initContainers"] == [SIDECAR]
    assert after["spec"]["containers"] == before["spec"]["containers"]
    assert after["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}, *volumes("app")]
    assert after["metadata"]["annotations"] == {
        "team": "shop",
        "leak-sidecar.io/status": "injected",
    }
    rest = {k: v for k, v in after["spec"].items() if k not in ("initContainers", "volumes")}
    assert rest == {k: v for k, v in before["spec"].items() if k != "volumes"}
    validate_pod(after)
    assert_restricted(after["spec"])


def test_the_input_is_never_mutated() -> None:
    """inject works on a copy: the caller's pod is as it was."""
    before = pod("app")
    kept = copy.deepcopy(before)
    inject(before, DEFAULTS)
    assert before == kept


def test_native_goes_after_existing_init_containers() -> None:
    """A pod's own init containers keep their order; the sidecar comes last."""
    before = pod("app")
    before["spec"]["initContainers"] = [{"name": "migrate", "image": "migrate:1"}]
    after = inject(before, DEFAULTS)
    assert [c["name"] for c in after["spec"]["initContainers"]] == ["migrate", "leak-sidecar"]


def test_classic_mode_appends_a_plain_container() -> None:
    """mode: classic adds the same container to containers, without restartPolicy."""
    after = inject(pod("app"), InjectSettings.validate({"mode": "classic"}))
    assert after["spec"]["containers"][1] == classic(SIDECAR)
    assert "initContainers" not in after["spec"]
    validate_pod(after)
    assert_restricted(after["spec"])


def test_injecting_twice_changes_nothing() -> None:
    """An injected pod is returned as it is."""
    once = inject(pod("app"), DEFAULTS)
    assert injected(once)
    assert inject(once, DEFAULTS) == once


def test_the_app_container_named_by_annotation_gets_the_memory_limit() -> None:
    """With two containers the annotation picks the app; the Downward API names it."""
    two = pod("envoy", "orders", annotations={"leak-sidecar.io/app-container": "orders"})
    after = inject(two, DEFAULTS)
    assert after["spec"]["volumes"][1:] == volumes("orders")
    assert after["spec"]["containers"] == two["spec"]["containers"]
    validate_pod(after)


def test_per_pod_annotations_become_run_flags() -> None:
    """expvar port and path and dry-run are flags of run; the rules ConfigMap is swapped."""
    annotated = pod(
        "app",
        annotations={**FLAG_ANNOTATIONS, "leak-sidecar.io/rules-configmap": "orders-rules"},
    )
    after = inject(annotated, DEFAULTS)
    assert after["spec"]["initContainers"][0]["args"] == [
        "run",
        "--config",
        "/etc/leak-sidecar/sidecar.yaml",
        "--app.expvar-port=6060",
        "--app.expvar-path=/internal/vars",
        "--breaker.dry-run",
    ]
    assert after["spec"]["volumes"][1:] == volumes("app", rules="orders-rules")


def test_settings_defaults_give_flags_and_annotations_override_them() -> None:
    """The settings file's expvar port and path apply to every pod that does not say."""
    settings = InjectSettings.validate({"expvar_port": 6060, "expvar_path": "/vars"})
    plain = inject(pod("app"), settings)["spec"]["initContainers"][0]["args"]
    assert plain[3:] == ["--app.expvar-port=6060", "--app.expvar-path=/vars"]
    own = pod("app", annotations={"leak-sidecar.io/expvar-port": "7070"})
    assert inject(own, settings)["spec"]["initContainers"][0]["args"][3] == "--app.expvar-port=7070"


def test_the_settings_files_path_is_not_judged_as_an_annotation() -> None:
    """A path the settings file accepted is passed on; only an annotation is checked here
    (a settings path used to be refused with the annotation's words)."""
    settings = InjectSettings.validate({"expvar_path": "/debug/vars?pretty=1"})
    args = inject(pod("app"), settings)["spec"]["initContainers"][0]["args"]
    assert args[3:] == ["--app.expvar-path=/debug/vars?pretty=1"]


def test_the_settings_file_shapes_image_resources_and_names(tmp_path: Path) -> None:
    """Image, pull policy, resources and the ConfigMap and Secret names come from the file."""
    path = tmp_path / "inject.yaml"
    path.write_text(
        "image: {repository: ghcr.io/acme/leak-sidecar, tag: 0.2.0, pull_policy: Always}\n"
        "resources:\n  requests: {cpu: 50m, memory: 96Mi}\n  limits: {cpu: '1', memory: 256Mi}\n"
        "config_map: shop-sidecar\nrules_config_map: shop-rules\ntoken_secret: shop-token\n",
        encoding="utf-8",
    )
    after = inject(pod("app"), load_settings(path))
    container = after["spec"]["initContainers"][0]
    assert container["image"] == "ghcr.io/acme/leak-sidecar:0.2.0"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    named = {v["name"]: v for v in after["spec"]["volumes"]}
    assert named["leak-sidecar-config"]["configMap"]["name"] == "shop-sidecar"
    assert named["leak-sidecar-rules"]["configMap"] == {"name": "shop-rules"}
    assert named["leak-sidecar-token"]["secret"]["secretName"] == "shop-token"
    validate_pod(after)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("mode: sidecar\n", ["mode: invalid enum value 'sidecar'"]),
        ("imagee: {}\n", ["imagee: unknown key"]),
        # Two problems in one file: the first is reported.
        (
            "config_map: Shop_Config\nresources: {limits: {cpu: lots, memory: 1Gi}}\n",
            [
                "config_map: expected a Kubernetes object name (lower-case letters, digits, "
                "'-' and '.', at most 253 characters), got 'Shop_Config'",
            ],
        ),
        (
            "resources: {limits: {cpu: lots, memory: 1Gi}}\n",
            [
                "resources.limits.cpu: expected a Kubernetes quantity such as 20m or 64Mi, "
                "got 'lots'",
            ],
        ),
        ("expvar_port: '6060'\n", ["expvar_port: expected int | null, got '6060'"]),
        ("expvar_path: vars\n", ["expvar_path: expected a path starting with '/', got 'vars'"]),
        ("- a\n", ["inject.config: {path}: expected a mapping at the top, got list"]),
        (
            "image: [\n",
            [
                "inject.config: {path}: invalid YAML at line 2, column 1: "
                "expected the node content, but found '<stream end>'"
            ],
        ),
    ],
)
def test_a_bad_settings_file_says_what_is_wrong(
    tmp_path: Path, text: str, problems: list[str]
) -> None:
    """The file's first problem is one key: problem line."""
    path = tmp_path / "inject.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [p.format(path=path) for p in problems]


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    """A path that does not exist is one clear line."""
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml")
    assert caught.value.problems == [f"inject.config: {tmp_path / 'nope.yaml'}: file not found"]


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (
            pod("envoy", "orders"),
            "cannot tell the app container among 2 (envoy, orders): "
            "name it with the annotation leak-sidecar.io/app-container",
        ),
        (
            pod("envoy", "orders", annotations={"leak-sidecar.io/app-container": "order"}),
            "annotation leak-sidecar.io/app-container: no container named 'order' in the pod "
            "(containers: envoy, orders)",
        ),
        (pod(), "cannot tell the app container: the pod has none"),
        (
            pod("app", annotations={"leak-sidecar.io/expvar-port": "80a"}),
            "annotation leak-sidecar.io/expvar-port: expected a port from 1 to 65535, got '80a'",
        ),
        (
            pod("app", annotations={"leak-sidecar.io/expvar-path": "/vars?x=1"}),
            "annotation leak-sidecar.io/expvar-path: expected a URL path starting with '/', "
            "without query or fragment, got '/vars?x=1'",
        ),
        (
            pod("app", annotations={"leak-sidecar.io/dry-run": "yes"}),
            'annotation leak-sidecar.io/dry-run: expected "true" or "false", got \'yes\'',
        ),
        (
            pod("app", annotations={"leak-sidecar.io/rules-configmap": "Rules!"}),
            "annotation leak-sidecar.io/rules-configmap: expected a Kubernetes object name "
            "(lower-case letters, digits, '-' and '.', at most 253 characters), got 'Rules!'",
        ),
        (
            pod("app", "leak-sidecar", annotations={"leak-sidecar.io/app-container": "app"}),
            "the pod already has a container named 'leak-sidecar' without the annotation "
            'leak-sidecar.io/status: injected; remove it, or set leak-sidecar.io/inject: "false"',
        ),
        (
            {"metadata": {}, "spec": ["not", "a", "mapping"]},
            "expected the pod's spec to be a mapping, got list",
        ),
    ],
)
def test_a_pod_that_cannot_be_injected_is_refused_clearly(
    candidate: dict[str, object], message: str
) -> None:
    """The refusal says what is wrong and how to fix it; the pod is not changed."""
    kept = copy.deepcopy(candidate)
    with pytest.raises(InjectError) as caught:
        inject(candidate, DEFAULTS)
    assert str(caught.value) == message
    assert candidate == kept


def test_a_volume_name_taken_is_refused() -> None:
    """A pod volume with one of the sidecar's names would make the pod invalid."""
    taken = pod("app")
    taken["spec"]["volumes"].append({"name": "leak-sidecar-state", "emptyDir": {}})
    with pytest.raises(InjectError) as caught:
        inject(taken, DEFAULTS)
    assert str(caught.value) == (
        "the pod already has a volume named 'leak-sidecar-state'; the sidecar needs that name"
    )


@pytest.mark.parametrize(
    ("annotations", "default", "expected"),
    [
        (None, False, False),
        (None, True, True),
        ({"leak-sidecar.io/inject": "true"}, False, True),
        ({"leak-sidecar.io/inject": "false"}, True, False),
    ],
)
def test_wants_reads_the_opt_in(
    annotations: dict[str, str] | None, default: bool, expected: bool
) -> None:
    """The annotation decides; without it the entry point's default does."""
    assert wants(pod("app", annotations=annotations), default=default) is expected


def test_wants_refuses_a_value_that_is_not_a_boolean() -> None:
    """ "yes" is not "true": the opt-in says what it means."""
    with pytest.raises(InjectError) as caught:
        wants(pod("app", annotations={"leak-sidecar.io/inject": "yes"}), default=False)
    assert str(caught.value) == (
        'annotation leak-sidecar.io/inject: expected "true" or "false", got \'yes\''
    )
