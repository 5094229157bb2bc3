"""A stand-in for the OpenChoreo services an observer calls on every query, for benchmarks: its API's name
lookups (`GET /api/v1/namespaces/{ns}[/{plural}/{name}]` -> `{"metadata": {"name", "uid"}}`), its OAuth2
token endpoint (client credentials) and its authorization service (`POST /api/v1/authz/evaluates`, every
decision true).

It is deliberately the cheapest server that speaks those calls (raw ASGI on uvicorn with uvloop and httptools,
answers built once), so a benchmark measures the observer's cost of calling out, not the stand-in's. Tests of
the calls themselves use their own fakes, which record and script what they see.

`python -m devservers.openchoreo_standin --registry FILE --port N` serves the names of a registry file (the
`--registry` format of `observer up`) until killed; it prints `PORT <n>` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import yaml

from devservers.local import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
_JSON = [(b"content-type", b"application/json")]
_NOT_FOUND = orjson.dumps({"message": "not found"})
_TOKEN = orjson.dumps({"access_token": "standin-token", "token_type": "Bearer", "expires_in": 3600})
_ALLOW = orjson.dumps([{"decision": True, "context": {"reason": "stand-in allows everything"}}])


def lookups(registry: dict[str, Any]) -> dict[str, bytes]:
    """Every lookup path of a registry document, with its answer."""
    answers: dict[str, bytes] = {}

    def add(path: str, name: str, uid: str) -> None:
        answers[path] = orjson.dumps({"metadata": {"name": name, "uid": uid}})

    for namespace in registry.get("namespaces", []):
        base = f"/api/v1/namespaces/{quote(namespace['name'], safe='')}"
        add(base, namespace["name"], namespace.get("uid") or f"ns-{namespace['name']}")
        for environment in namespace.get("environments", []):
            add(f"{base}/environments/{quote(environment['name'], safe='')}", environment["name"], environment["uid"])
        for project in namespace.get("projects", []):
            add(f"{base}/projects/{quote(project['name'], safe='')}", project["name"], project["uid"])
            for component in project.get("components", []):
                add(f"{base}/components/{quote(component['name'], safe='')}", component["name"], component["uid"])
    return answers


def app(answers: dict[str, bytes]) -> Any:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        path, method = scope["path"], scope["method"]
        if method == "POST" and path.endswith("/authz/evaluates"):
            status, body = 200, _ALLOW
        elif method == "POST" and path.endswith("/token"):
            status, body = 200, _TOKEN
        elif path == "/health":
            status, body = 200, b"{}"
        else:
            answer = answers.get(quote(path, safe="/"))
            status, body = (200, answer) if answer is not None else (404, _NOT_FOUND)
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    return asgi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    answers = lookups(yaml.safe_load(Path(args.registry).read_text()))
    print(f"PORT {args.port}", flush=True)
    uvicorn.run(app(answers), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


@contextlib.contextmanager
def openchoreo_standin(registry: Path) -> Iterator[str]:
    """The stand-in in a process of its own, on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devservers.openchoreo_standin", "--registry", str(registry), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        healthy = f"{url}/health"
        wait_until_answering(
            process, lambda: httpx.get(healthy, timeout=1).status_code == 200, "the OpenChoreo stand-in", 20
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
