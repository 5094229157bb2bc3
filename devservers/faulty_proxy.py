"""A fault-injecting HTTP reverse proxy in front of a real OpenSearch, for tests of retrying clients.

Everything is forwarded unchanged except `_bulk` requests, which the test can steer:

- `fail_statuses`: the next `_bulk` requests are answered with these statuses, one each, without forwarding;
- `always_status`: every `_bulk` request is answered with this status;
- `refuse_every` / `refuse_requests`: in the next `refuse_requests` `_bulk` requests, every `refuse_every`-th
  item (positions 0, n, 2n, ...) is cut from the body before forwarding and reported back with status 429,
  spliced into OpenSearch's real response, so those documents are truly not indexed unless re-sent.

Each `_bulk` request is recorded (`bulks`: the `_id`s it carried, its size, what it was answered), as is the
most `_bulk` requests ever in flight at once.

    proxy = FaultyProxy(opensearch_url)
    with serving(proxy.app) as url:
        ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_REFUSED = {"type": "rejected_execution_exception", "reason": "injected by the test proxy"}


@dataclass
class BulkSeen:
    ids: list[str]
    size: int  # bytes of the body as received
    status: int  # what the proxy answered
    refused: list[str] = field(default_factory=list)  # ids reported back with 429 per item


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_statuses: list[int] = []
        self.always_status: int | None = None
        self.refuse_every = 0
        self.refuse_requests = 0
        self.bulks: list[BulkSeen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        if not request.url.path.endswith("/_bulk"):
            return await self._forward(request, body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._bulk(request, body)
        finally:
            self.in_flight -= 1

    async def _bulk(self, request: Request, body: bytes) -> Response:
        pairs = _pairs(body)
        seen = BulkSeen(ids=[_id(action) for action, _ in pairs], size=len(body), status=200)
        self.bulks.append(seen)
        status = self.always_status or (self.fail_statuses.pop(0) if self.fail_statuses else None)
        if status is not None:
            seen.status = status
            error = {"error": {**_REFUSED, "root_cause": [_REFUSED]}, "status": status}
            return Response(json.dumps(error), status, media_type="application/json")
        if not (self.refuse_every and self.refuse_requests):
            return await self._forward(request, body)

        self.refuse_requests -= 1
        refused = set(range(0, len(pairs), self.refuse_every))
        seen.refused = [seen.ids[i] for i in sorted(refused)]
        kept = [pair for i, pair in enumerate(pairs) if i not in refused]
        upstream_items: list[dict] = []
        if kept:
            forwarded = await self._forward(request, b"".join(a + b"\n" + s + b"\n" for a, s in kept))
            if forwarded.status_code != 200:
                return forwarded
            upstream_items = json.loads(bytes(forwarded.body))["items"]
        answers = iter(upstream_items)
        items = [
            {"index": {"status": 429, "error": _REFUSED}} if i in refused else next(answers) for i in range(len(pairs))
        ]
        return Response(json.dumps({"errors": True, "items": items}), 200, media_type="application/json")

    async def _forward(self, request: Request, body: bytes) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        async with httpx.AsyncClient(timeout=60) as client:
            url = self.upstream + request.url.path
            answer = await client.request(request.method, url, params=request.url.query, content=body, headers=headers)
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))


def _pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    """The (action, source) line pairs of a `_bulk` body made only of `index` actions."""
    lines = body.rstrip(b"\n").split(b"\n")
    return list(zip(lines[::2], lines[1::2], strict=True))


def _id(action: bytes) -> str:
    (meta,) = json.loads(action).values()
    return meta["_id"]
