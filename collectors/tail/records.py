"""The identity of tailed lines: the pod's labels give the scope, the path says where the line ran (the
Enricher in collectors/enrich.py builds the records).

The path says only where a line ran; the OpenChoreo scope is in the pod's labels (and a workflow's task in its
annotations), which the pipeline looks up by pod UID. Both go through `identity_from_attributes`, the one
mapping every collector uses, so a line gets the scope an OTLP record from the same pod would get (including the
`workflows-<ns>` namespace rule for workflow pods).
"""

from __future__ import annotations

from collections.abc import Mapping

from collectors.tail.paths import PodContainer
from domain.identity import identity_from_attributes
from domain.model import Identity


def identity_for(source: PodContainer, pod_metadata: Mapping[str, str] | None = None) -> Identity:
    """The identity of a container's lines: its location plus the pod's labels and annotations (keys as
    Kubernetes spells them, `openchoreo.dev/component-uid`, `workflows.argoproj.io/node-name`). The location
    wins over metadata that names another pod."""
    attrs: dict[str, str] = dict(pod_metadata or {})
    attrs.update(source.attributes())
    return identity_from_attributes(attrs)
