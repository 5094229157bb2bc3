"""What the collector end-to-end tests share: one node's /var/log/pods with a cart pod, and its labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devservers.sample import CART_PROD_LABELS

POD_NAMESPACE, POD, POD_UID, CONTAINER = (
    "dp-acme-prod",
    "cart-7d9f-abcde",
    "0b9e4c1a-1111-4a2b-9c3d-123456789abc",
    "main",
)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A node's /var/log/pods with one container directory, and the pod's labels in a metadata file."""
    (tmp_path / "pods" / f"{POD_NAMESPACE}_{POD}_{POD_UID}" / CONTAINER).mkdir(parents=True)
    (tmp_path / "pods.yaml").write_text(
        yaml.safe_dump({"pods": [{"namespace": POD_NAMESPACE, "name": POD, "labels": CART_PROD_LABELS}]})
    )
    return tmp_path
