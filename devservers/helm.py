"""The `helm` CLI for the chart tests: built from the Go module proxy by scripts/helm.sh (cached), or `HELM_BIN`.

    helm = helm_binary()                                      # waits for a background build (make servers)
    objects = template(CHARTS / "observability-plane", {"security": {"enabled": False, ...}})
    lint(CHARTS / "data-plane", values)                       # -> (ok, output)

`template` renders exactly what `helm install` would apply (CRDs from crds/ included), as a list of manifests; a
chart that refuses the values (`fail`, values.schema.json) raises `HelmError` carrying helm's message, which the
guard-rail tests assert on.
"""

from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

import yaml

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "helm.sh"
CHARTS = pathlib.Path(__file__).resolve().parents[1] / "charts"
#: A cold build is a few minutes on two busy cores; a render or lint takes well under a second.
BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 120


class HelmError(RuntimeError):
    """helm refused (a guard rail, the values schema, a template error); the message is helm's stderr, then its
    stdout (where `helm lint` reports what failed)."""


@functools.cache
def helm_binary() -> pathlib.Path:
    """The helm executable: `HELM_BIN` if set, else scripts/helm.sh's cached build (waiting for a build already
    running, or building it now)."""
    given = os.environ.get("HELM_BIN")
    if given:
        return pathlib.Path(given)
    out = subprocess.run(
        ["bash", str(SCRIPT), "path"], check=True, stdout=subprocess.PIPE, text=True, timeout=BUILD_TIMEOUT_S
    )
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


def _run(args: list[str], values: Mapping[str, Any] | None) -> str:
    """helm with the values in a temporary file (never --set: its string parsing would change what is tested)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as handle:
        yaml.safe_dump(dict(values or {}), handle)
        handle.flush()
        # HOME and the XDG dirs in a throwaway place: helm writes its cache and config there.
        with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": home,
                "XDG_CACHE_HOME": f"{home}/cache",
                "XDG_CONFIG_HOME": f"{home}/config",
                "XDG_DATA_HOME": f"{home}/data",
            }
            result = subprocess.run(
                [str(helm_binary()), *args, "-f", handle.name],
                capture_output=True,
                text=True,
                env=env,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
    if result.returncode != 0:
        raise HelmError("\n".join(part.strip() for part in (result.stderr, result.stdout) if part.strip()))
    return result.stdout


def template(
    chart: pathlib.Path | str,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "test",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Every manifest `helm install` would apply for these values (the chart's CRDs first), parsed."""
    text = _run(["template", release, str(chart), "--namespace", namespace, "--include-crds"], values)
    return [document for document in yaml.safe_load_all(text) if document]


def notes(chart: pathlib.Path | str, values: Mapping[str, Any] | None = None) -> str:
    """NOTES.txt as rendered for these values: what `helm install` prints after "NOTES:" (a client-side dry
    run, which contacts no cluster)."""
    text = _run(["install", "test", str(chart), "--dry-run=client"], values)
    return text.split("\nNOTES:\n", 1)[1] if "\nNOTES:\n" in text else ""


def lint(chart: pathlib.Path | str, values: Mapping[str, Any] | None = None) -> str:
    """`helm lint --strict`; returns its report, raises HelmError when it finds an error."""
    return _run(["lint", "--strict", str(chart)], values)
