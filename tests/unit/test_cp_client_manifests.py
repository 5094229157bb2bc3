"""The client's manifest handling, no server needed: files and standard input, `kind: List`, bad files, kind names
as kubectl accepts them, and the apply order covering every kind."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
import yaml

from controlplane import kinds
from controlplane.client import ORDER, ControlPlaneClient, ManifestError, find_kind, load_documents

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
PROJECT = {"apiVersion": "openchoreo.dev/v1alpha1", "kind": "Project", "metadata": {"name": "p"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}


def test_the_apply_order_names_every_kind_once() -> None:
    assert sorted(ORDER) == sorted(kinds.BY_KIND)
    assert ORDER.index("Namespace") < ORDER.index("Secret") < ORDER.index("DataPlane")
    assert ORDER.index("Environment") < ORDER.index("ReleaseBinding")


def test_load_documents_reads_stdin_lists_and_refuses_non_mappings(tmp_path: Path) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [NAMESPACE, PROJECT]}
    stdin = io.StringIO(yaml.safe_dump_all([listed, None, SECRET]))
    assert [d["kind"] for d in load_documents(["-"], stdin=stdin)] == ["Namespace", "Project", "Secret"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="document 1 is not a mapping"):
        load_documents([str(bad)])
    with pytest.raises(ManifestError, match="missing.yaml"):
        load_documents([str(tmp_path / "missing.yaml")])
    with pytest.raises(ManifestError, match="unknown kind 'pods'"):
        find_kind("pods")
    assert find_kind("projects.openchoreo.dev").kind == "Project"


def test_an_unreachable_control_plane_is_an_error_line_per_document() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ControlPlaneClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        outcomes = client.apply([NAMESPACE, SECRET], "default")
        assert [o.failed for o in outcomes] == [True, True]
        assert outcomes[0].line.startswith('error: Namespace "default": cannot reach the control plane at http://')
        assert outcomes[1].line.startswith('error: Secret "s": cannot reach')
        assert all(o.failed for o in client.delete([NAMESPACE], "default"))
        with pytest.raises(ManifestError, match="cannot reach"):
            client.get(find_kind("namespaces"), "")


def test_a_directory_is_read_file_by_file_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: Project\nmetadata: {name: second}\n")
    (tmp_path / "a.yml").write_text(
        "kind: Project\nmetadata: {name: first}\n---\nkind: Project\nmetadata: {name: also}\n"
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    names = [doc["metadata"]["name"] for doc in load_documents([str(tmp_path)])]
    assert names == ["first", "also", "second"]
