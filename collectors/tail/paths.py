"""Which pod and container a log file belongs to, from its path alone.

The kubelet lays container logs out as

- `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<restart count>.log` (the real files; the runtime
  writes them; rotated copies are `<n>.log.<YYYYMMDD-hhmmss>`, later gzipped), and
- `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` (symlinks into the above, one per
  running container; what Fluent Bit tails by default).

Namespaces, pod names and container names are DNS labels or subdomains, so none holds `_`, which is what makes
the split unambiguous. The `/var/log/containers` name has no pod UID; `source_of` follows the symlink to the
pods path to get it. Only the trailing components are read, so the same layout under a test directory parses
the same way.

Pod labels (and so the OpenChoreo scope) are not in the path: the pipeline looks them up by pod UID and hands
them to `records.identity_for` (which also applies the `workflows-<ns>` namespace rule).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Final

#: `<n>.log`, or a kubelet-rotated `<n>.log.<timestamp>` (a `.gz` one is never read: the tail holds the file
#: open from before it was compressed, or it was gone before the tail started).
_POD_FILE: Final = re.compile(r"(\d+)\.log(?:\.[^/]*)?\Z")
_POD_DIR: Final = re.compile(r"([^_/]+)_([^_/]+)_([^_/]+)\Z")
_CONTAINERS_FILE: Final = re.compile(r"([^_/]+)_([^_/]+)_([^_/]+)-([0-9a-f]{64})\.log\Z")

#: Argo's helper containers in workflow pods: their output is Argo's, not the workflow's (adapters-notes §9).
ARGO_HELPER_CONTAINERS: Final = frozenset({"init", "wait"})
WORKFLOWS_NAMESPACE_PREFIX: Final = "workflows-"


@dataclass(frozen=True, slots=True)
class PodContainer:
    """Where a log file's lines ran. `restart` is the `<n>` of `<n>.log` (-1 when the path does not say)."""

    namespace: str
    pod: str
    pod_uid: str
    container: str
    restart: int = -1

    def attributes(self) -> dict[str, str]:
        """The OpenTelemetry resource attributes this location stands for, to merge with the pod's labels
        before `domain.identity.identity_from_attributes`."""
        attrs = {
            "k8s.namespace.name": self.namespace,
            "k8s.pod.name": self.pod,
            "k8s.container.name": self.container,
        }
        if self.pod_uid:
            attrs["k8s.pod.uid"] = self.pod_uid
        return attrs


def parse_pods_path(path: str) -> PodContainer | None:
    """`.../<namespace>_<pod>_<uid>/<container>/<n>.log[.<suffix>]`, or None when the path is not one."""
    head, file_name = os.path.split(path)
    head, container = os.path.split(head)
    pod_dir = os.path.basename(head)
    file_match = _POD_FILE.match(file_name)
    dir_match = _POD_DIR.match(pod_dir)
    if file_match is None or dir_match is None or not container:
        return None
    namespace, pod, uid = dir_match.groups()
    return PodContainer(namespace, pod, uid, container, int(file_match.group(1)))


def parse_containers_path(path: str) -> PodContainer | None:
    """`.../<pod>_<namespace>_<container>-<64 hex id>.log`, without a pod UID (the name has none)."""
    match = _CONTAINERS_FILE.match(os.path.basename(path))
    if match is None:
        return None
    pod, namespace, container, _container_id = match.groups()
    return PodContainer(namespace, pod, "", container)


def parse_log_path(path: str) -> PodContainer | None:
    """Either layout, from the path string alone (no file system access)."""
    return parse_pods_path(path) or parse_containers_path(path)


def source_of(path: str) -> PodContainer | None:
    """Like `parse_log_path`, but a `/var/log/containers` symlink is followed to its pods path, which also
    gives the pod UID and restart count. Falls back to the name when the link cannot be read."""
    found = parse_pods_path(path)
    if found is not None:
        return found
    named = parse_containers_path(path)
    try:
        target = os.path.realpath(path)
    except OSError:
        return named
    return parse_pods_path(target) or named


def is_argo_helper(source: PodContainer) -> bool:
    """Argo's `init` and `wait` containers of workflow pods, which run in `workflows-<namespace>`. Elsewhere a
    container may well be called `wait`, so the namespace is part of the test."""
    return source.container in ARGO_HELPER_CONTAINERS and source.namespace.startswith(WORKFLOWS_NAMESPACE_PREFIX)


def natural_key(path: str) -> tuple[str, int, str]:
    """Sort key that puts `2.log` before `10.log` in one directory, so a pod's restarts are read in order."""
    head, name = os.path.split(path)
    match = _POD_FILE.match(name)
    return (head, int(match.group(1)) if match else -1, name)
