"""The charts' and the image's files, read without helm: the shared templates are one file in three places, every
values.yaml satisfies its own values.schema.json (and a typo is refused by name), versions agree, the CRD is
upstream's, and the Dockerfile builds a non-root image without build tools from the packages pyproject ships."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
CHART_NAMES = ("observability-plane", "data-plane", "control-plane")
SHARED = {"_helpers.tpl": CHART_NAMES, "_agent.tpl": CHART_NAMES[:2], "_collector.tpl": CHART_NAMES[:2]}
REFERENCE_CRD = ROOT.parent / "shared" / "reference" / "openchoreo" / "openchoreo.dev_observabilityalertrules.yaml"


def values(chart: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    return document


def schema(chart: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CHARTS / chart / "values.schema.json").read_text())
    return document


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_templates_are_identical_in_every_chart(name: str) -> None:
    copies = {chart: (CHARTS / chart / "templates" / name).read_text() for chart in SHARED[name]}
    first = copies[SHARED[name][0]]
    assert all(text == first for text in copies.values()), f"{name} differs between {sorted(copies)}"


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_default_values_satisfy_the_schema(chart: str) -> None:
    jsonschema.Draft7Validator.check_schema(schema(chart))
    jsonschema.validate(values(chart), schema(chart))


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_object_in_the_schema_refuses_unknown_keys(chart: str) -> None:
    """additionalProperties false wherever the schema spells out properties, so a typo anywhere is an error."""

    def walk(node: dict[str, Any], path: str) -> list[str]:
        loose = [path] if "properties" in node and node.get("additionalProperties") is not False else []
        for key, child in node.get("properties", {}).items():
            loose += walk(child, f"{path}.{key}")
        return loose

    assert walk(schema(chart), chart) == []


@pytest.mark.parametrize(
    ("chart", "path"),
    [
        ("observability-plane", ("observer", "replcas")),
        ("observability-plane", ("clusterAgent", "tls", "secretNmae")),
        ("data-plane", ("collector", "exporter", "endpont")),
        ("control-plane", ("controlPlane", "databse")),
    ],
)
def test_a_typo_is_refused_with_the_key_s_name(chart: str, path: tuple[str, ...]) -> None:
    document = values(chart)
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 2
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(document, schema(chart))
    assert path[-1] in caught.value.message


def with_value(chart: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The chart's default values with the key at `path` set to `value`."""
    document = values(chart)
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


AUDIT_PRODUCER = {"namespace": "openchoreo-control-plane", "container": "controlplane"}


@pytest.mark.parametrize(
    ("chart", "path", "value"),
    [
        ("observability-plane", ("observer", "audit", "log"), "sink,stdout"),
        ("observability-plane", ("observer", "audit", "log"), "off"),
        ("observability-plane", ("observer", "opensearch", "auditIndexPrefix"), "acme-audit-"),
        ("observability-plane", ("collector", "cluster"), "prod-eu-1"),
        ("data-plane", ("collector", "cluster"), ""),
        ("data-plane", ("collector", "audit", "trustedProducers"), []),
        ("data-plane", ("collector", "audit", "trustedProducers"), [{**AUDIT_PRODUCER, "podPrefix": "controlplane-"}]),
        ("data-plane", ("collector", "exporter", "auditTokenSecret"), {"name": "observer-internal-token", "key": "t"}),
        ("control-plane", ("audit",), {"log": "off", "trustForwardedFor": True}),
    ],
)
def test_the_audit_and_placement_values_accept_what_they_document(
    chart: str, path: tuple[str, ...], value: Any
) -> None:
    jsonschema.validate(with_value(chart, path, value), schema(chart))


@pytest.mark.parametrize(
    ("chart", "path", "value"),
    [
        ("observability-plane", ("observer", "audit", "log"), "file"),
        ("observability-plane", ("observer", "audit", "trustForwardedFor"), "true"),
        ("observability-plane", ("observer", "opensearch", "auditIndexPrefix"), "Audit/*"),
        ("observability-plane", ("collector", "cluster"), "prod eu"),
        ("data-plane", ("collector", "cluster"), "x" * 254),
        ("data-plane", ("collector", "audit", "trustedProducers"), [{"namespace": "cp"}]),  # no container
        ("data-plane", ("collector", "audit", "trustedProducers"), [{**AUDIT_PRODUCER, "pod_prefix": "cp-"}]),
        ("data-plane", ("collector", "audit", "trustedProducers"), [{**AUDIT_PRODUCER, "container": "Control Plane"}]),
        ("data-plane", ("collector", "audit", "trustedProducers"), [AUDIT_PRODUCER] * 101),
        ("data-plane", ("collector", "exporter", "auditTokenSecret"), {"name": "t", "secretKey": "t"}),
        ("control-plane", ("audit", "log"), "sink"),  # standalone, it has no sink: records would vanish
        ("control-plane", ("audit", "trustForwardedFor"), "yes"),
    ],
)
def test_the_schema_refuses_a_bad_audit_or_placement_value(chart: str, path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(with_value(chart, path, value), schema(chart))


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_chart_app_version_is_the_package_version(chart: str) -> None:
    """The charts default every image tag to appVersion: it must be the version the image is built from."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chart_yaml = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
    assert chart_yaml["apiVersion"] == "v2" and chart_yaml["name"] == chart
    assert chart_yaml["appVersion"] == project["version"]


def test_the_alert_rule_crd_is_upstream_s() -> None:
    shipped = CHARTS / "observability-plane" / "crds" / REFERENCE_CRD.name
    if REFERENCE_CRD.is_file():  # the reference sits beside the checkout on development machines
        assert shipped.read_text() == REFERENCE_CRD.read_text()
    crd = yaml.safe_load(shipped.read_text())
    assert crd["metadata"]["name"] == "observabilityalertrules.openchoreo.dev"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]


# ------------------------------------------------------------------------------------------------ Dockerfile


def dockerfile_stages() -> list[tuple[str, list[str]]]:
    """(stage name, its instructions) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("ARG ") and not stages:
            continue
        if line.startswith("FROM "):
            stages.append((line.split()[-1], []))
        stages[-1][1].append(line)
    return stages


def test_dockerfile_has_a_build_stage_and_a_final_stage() -> None:
    stages = dockerfile_stages()
    assert [name for name, _ in stages] == ["build", "final"]
    final = stages[-1][1]
    assert not any("pip install" in line for line in final), "the final stage installs nothing"
    assert any(line.startswith("COPY --from=build /opt/observer ") for line in final)
    assert any("rm -rf" in line and "/usr/local/bin/pip" in line for line in final), "pip is removed"
    assert any(line.startswith("RUN") and "pip uninstall -y pip setuptools wheel" in line for line in stages[0][1])


def test_dockerfile_runs_as_the_charts_non_root_user() -> None:
    final = dockerfile_stages()[-1][1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users == ["65532:65532"], "non-root, the uid the charts' securityContext names"
    assert 'ENTRYPOINT ["observer"]' in final
    env = " ".join(line for line in final if line.startswith("ENV "))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "no bytecode writes on a read-only root filesystem"
    assert 'VOLUME ["/data", "/tmp"]' in final


def test_dockerfile_copies_every_package_pyproject_ships() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    build = dockerfile_stages()[0][1]
    copied = {line.split()[1] for line in build if line.startswith("COPY ") and "--from" not in line}
    assert packages <= copied
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "everything is excluded but what is admitted by name"
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert packages | {"pyproject.toml", "README.md", "constraints.txt"} <= admitted


def test_the_image_and_make_install_the_versions_the_tests_passed_with() -> None:
    pinned = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pinned and all(re.fullmatch(r"[A-Za-z0-9._-]+==[^=\s]+", line) for line in pinned), "name==version each"
    assert not any(line.lower().startswith("observer-plane") for line in pinned), "not the project itself"
    build = dockerfile_stages()[0][1]
    assert any("pip install -c constraints.txt ." in line for line in build)
    assert "-c constraints.txt -e '.[test]'" in (ROOT / "Makefile").read_text()


def test_every_dependency_pyproject_names_has_its_tested_version() -> None:
    """A dependency added without `make lock` would install at whatever version a machine finds that day."""

    def name(requirement: str) -> str:
        return re.sub(r"[-_.]+", "-", re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0]).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pinned = {name(line) for line in lines if line and line[0] != "#"}
    assert wanted <= pinned, f"not in constraints.txt (run `make lock`): {sorted(wanted - pinned)}"
