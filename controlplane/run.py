"""`observer controlplane` / `python -m controlplane.run`: serve the control plane's REST API.

Slice 1 serves only the resource API (CONTROLPLANE_API_PORT, 8090). It has no authentication yet, so it refuses
to start unless `JWT_DISABLED=true` says the operator knows that: an open API that can change every plane must
never come up by accident. The port is bound before the store is opened, so a clash is reported in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from controlplane.config import ControlPlaneSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="observer controlplane", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on (CONTROLPLANE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="REST API port (CONTROLPLANE_API_PORT, default 8090)")
    parser.add_argument("--db", help="store URL: sqlite:///path or postgresql://... (CONTROLPLANE_DB)")
    parser.add_argument("--data-dir", help="where the default SQLite store lives (OBSERVER_DATA_DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 when it cannot start (the reason on stderr)."""
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["api_port"] = args.port
    if args.db:
        overrides["db"] = args.db
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    try:
        settings = ControlPlaneSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"observer controlplane: bad settings: {wrong}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.jwt_disabled:
        print(
            "observer controlplane: authentication is not implemented yet; set JWT_DISABLED=true to serve the "
            "API without it (only on a trusted network)",
            file=sys.stderr,
        )
        return 2

    from controlplane.api import create_app
    from controlplane.store import Store
    from serving import Listen, PortUnavailable, bind_all, run_loop, server

    try:
        sockets = bind_all(
            [Listen(settings.host, settings.api_port, "control plane API", "--port or CONTROLPLANE_API_PORT")]
        )
    except PortUnavailable as exc:
        print(f"observer controlplane: {exc}", file=sys.stderr)
        return 2
    try:
        store = Store(settings.db_url)
    except (SQLAlchemyError, ValueError) as exc:  # a malformed URL, or a database we cannot reach
        for sock in sockets:
            sock.close()
        print(f"observer controlplane: cannot open the store {settings.db_url!r}: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(store)
        api = server(app, settings.host, settings.api_port, settings.log_level)

        async def serve() -> None:
            from serving import run_servers

            await run_servers([api], sockets=sockets)

        run_loop(serve())
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
