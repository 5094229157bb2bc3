"""`observer`: the command line of the observability plane."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from observer import logs
from observer.config import Settings

log = logging.getLogger("observer")


def _settings(args: argparse.Namespace) -> Settings:
    """Environment first, then flags given on the command line."""
    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "internal_port": args.internal_port,
            "otlp_port": args.otlp_port,
            "data_dir": args.data_dir,
            "registry_file": args.registry,
        }.items()
        if value is not None
    }
    return Settings().model_copy(update=overrides)


def _banner(settings: Settings, demo: bool) -> str:
    public = f"http://{settings.host}:{settings.port}"
    where = f"logs, events and traces in OpenSearch at {settings.opensearch_address}" if settings.opensearch_address else "embedded backend"
    window = '"startTime":"\'$(date -u -d "-15 min" +%FT%TZ)\'","endTime":"\'$(date -u +%FT%TZ)\'"'
    return "\n".join(
        [
            f"Observer all-in-one is up ({where}, data in {settings.data_dir.resolve()})",
            f"  Observer API   {public}   (OpenAPI: {public}/docs)",
            f"  internal API   http://{settings.host}:{settings.internal_port}",
            f"  OTLP/HTTP      http://{settings.host}:{settings.otlp_port}/v1/{{logs,traces,metrics}}",
            "  demo traffic   " + ("on: namespace demo, project shop, components frontend, catalog, cart, payments" if demo else "off"),
            "Try:",
            f"  curl -s {public}/api/v1/logs/query -H 'Content-Type: application/json' -d '{{{window},"
            '"searchScope":{"namespace":"demo","project":"shop","component":"cart","environment":"production"},"limit":5}\'',
            f"  curl -s {public}/api/v1alpha1/metrics/runtime-topology -H 'Content-Type: application/json' -d '{{{window},"
            '"searchScope":{"namespace":"demo","project":"shop","environment":"production"}}\'',
        ]
    )


def _up(args: argparse.Namespace) -> int:
    from observer import runtime

    settings = _settings(args)
    logs.configure(settings.log_level)
    demo = None
    if args.demo:
        from observer.demo import DemoTraffic

        demo = DemoTraffic(endpoint=f"http://127.0.0.1:{settings.otlp_port}", rate=args.demo_rate)
        demo.backfill(minutes=15)
        demo.start()
    print(_banner(settings, bool(demo)), file=sys.stderr, flush=True)
    try:
        asyncio.run(runtime.up(settings))
    finally:
        if demo:
            demo.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from observer import demo

    logs.configure("info")
    return demo.run(args) or 0


def _collect(args: argparse.Namespace) -> int:
    from collectors import config as collector_config
    from collectors.run import ConfigError, collect

    logs.configure(Settings().log_level)
    try:
        config = collector_config.load(args.config)
    except (OSError, ValueError) as exc:  # unreadable file, bad YAML, unknown or mistyped keys
        print(f"observer collect: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(collect(config))
    except ConfigError as exc:
        print(f"observer collect: {exc}", file=sys.stderr)
        return 2
    return 0


def _opensearch_init(args: argparse.Namespace) -> int:
    """Installs index templates and retention the way `observer up` does at start, for setup jobs."""
    from adapters.opensearch.backend import OpenSearchBackend

    settings = Settings()
    logs.configure(settings.log_level)
    config = settings.opensearch()
    if config is None:
        print("observer opensearch init: set OPENSEARCH_ADDRESS (and OPENSEARCH_USERNAME/PASSWORD if needed)", file=sys.stderr)
        return 2

    async def install() -> bool:
        backend = OpenSearchBackend(config)
        try:
            await backend.install(retention_days=settings.retention_hours / 24)
            return backend.ism
        finally:
            await backend.close()

    ism = asyncio.run(install())
    layout = config.layout
    print(f"index templates installed for {layout.logs}*, {layout.events}*, {layout.traces}*")
    print("retention: " + ("ISM policies installed" if ism else "no ISM plugin; `observer up` deletes expired daily indices"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="observer", description="An open observability plane for internal developer platforms.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the all-in-one: Observer API, internal API and OTLP receiver on the embedded backend")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--internal-port", type=int)
    up.add_argument("--otlp-port", type=int)
    up.add_argument("--data-dir", type=Path)
    up.add_argument("--registry", type=Path, help="YAML file declaring namespaces, projects, components, environments")
    up.add_argument("--demo", action="store_true", help="also generate demo telemetry for a sample platform")
    up.add_argument("--demo-rate", type=float, default=5.0, help="demo requests per second")
    up.set_defaults(run=_up)

    demo_cmd = commands.add_parser("demo", help="send demo telemetry with the OpenTelemetry SDK to an OTLP/HTTP endpoint")
    from observer import demo

    demo.add_arguments(demo_cmd)
    demo_cmd.set_defaults(run=_demo)

    collect_cmd = commands.add_parser(
        "collect", help="run the collector: tail container logs and receive OTLP, enrich, buffer on disk, export"
    )
    collect_cmd.add_argument("--config", type=Path, help="YAML configuration (environment variables override it)")
    collect_cmd.set_defaults(run=_collect)

    opensearch = commands.add_parser("opensearch", help="OpenSearch administration")
    opensearch_commands = opensearch.add_subparsers(dest="opensearch_command", required=True)
    init = opensearch_commands.add_parser("init", help="install index templates and retention (idempotent)")
    init.set_defaults(run=_opensearch_init)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
