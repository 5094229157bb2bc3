"""Servers that fail the way real dependencies fail, on loopback, for fault tests: a port that refuses, a
server that accepts and never answers, and an upstream that answers every request with one error."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound (nobody else can take it meanwhile) but not listening: connects are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A real TCP server on loopback that accepts every connection, reads the request and never answers."""
    open_writers: set[asyncio.StreamWriter] = set()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            writer.close()
            open_writers.discard(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in list(open_writers):
            writer.close()
        await server.wait_closed()


def failing_upstream(status: int, content_type: str, body: str) -> Starlette:
    """A stand-in for a backend that answers every request with one failure."""

    async def answer(_: Request) -> Response:
        return Response(body, status, media_type=content_type)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "HEAD", "POST", "PUT", "DELETE"])])
