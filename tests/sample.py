"""A small sample platform and records for tests: names, stable UIDs, and record builders."""

from __future__ import annotations

import uuid

from adapters.model import Identity

NS = "acme"
PROJECT = "shop"
PROJECT_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "project/shop"))
ENVIRONMENTS = {"dev": str(uuid.uuid5(uuid.NAMESPACE_URL, "env/dev")), "prod": str(uuid.uuid5(uuid.NAMESPACE_URL, "env/prod"))}
COMPONENTS = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"component/{name}")) for name in ("frontend", "cart", "payments")}

BASE_NS = 1_790_000_000 * 10**9  # 2026-09-21T...Z, a fixed instant so tests never depend on the clock


def identity(component: str, environment: str = "prod", pod: str = "", namespace: str = NS) -> Identity:
    return Identity(
        namespace=namespace,
        project=PROJECT,
        project_uid=PROJECT_UID,
        component=component,
        component_uid=COMPONENTS[component],
        environment=environment,
        environment_uid=ENVIRONMENTS[environment],
        pod=pod or f"{component}-{environment}-0",
        pod_namespace=f"dp-{namespace}-{environment}",
        container="main",
    )


#: The resource attributes (pod labels) OpenChoreo gives the prod `cart` workload.
CART_PROD_LABELS = {
    "openchoreo.dev/namespace": NS,
    "openchoreo.dev/project": PROJECT,
    "openchoreo.dev/project-uid": PROJECT_UID,
    "openchoreo.dev/component": "cart",
    "openchoreo.dev/component-uid": COMPONENTS["cart"],
    "openchoreo.dev/environment": "prod",
    "openchoreo.dev/environment-uid": ENVIRONMENTS["prod"],
}
