"""`observer`: the command line of the observability plane."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from observer import logs
from observer.auth.authorizers import AuthzConfigError
from observer.auth.settings import AuthConfigError, AuthSettings
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


def _demo_without_idp() -> bool:
    """`up --demo` (what `make run` starts) has no identity provider to verify tokens against. Unless the
    environment says otherwise (JWT_DISABLED set either way, or a JWKS_URL), it sets JWT_DISABLED=true
    explicitly, so the demo answers curl without a token; runtime.up then logs the loud warning that goes with
    it. Returns True when it did."""
    if "JWT_DISABLED" in os.environ or os.environ.get("JWKS_URL"):
        return False
    os.environ["JWT_DISABLED"] = "true"
    log.warning("observer up --demo: no JWKS_URL, so JWT_DISABLED=true is set for this demo process")
    return True


def _auth_line(auth: AuthSettings) -> str:
    if not auth.enabled:
        return "  auth           OFF (JWT_DISABLED=true): every request is accepted; for a laptop demo only"
    return f"  auth           bearer JWT, keys from {auth.jwks_url}"


def _banner(settings: Settings, demo: bool, auth: AuthSettings | None = None) -> str:
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
            *([_auth_line(auth)] if auth is not None else []),
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
    if args.demo:
        _demo_without_idp()
    try:  # every setting that can stop the process is checked before anything starts or prints "up"
        settings.internal_security()
        settings.alert_store()
        auth = settings.auth()
        authenticator = runtime.authenticator_for(auth)
        authorizer = runtime.authorizer_for(auth)
    except (AuthConfigError, AuthzConfigError, ValueError) as exc:
        print(f"observer up: {exc}", file=sys.stderr)
        return 2
    demo = None
    if args.demo:
        from observer.demo import DemoTraffic

        demo = DemoTraffic(endpoint=f"http://127.0.0.1:{settings.otlp_port}", rate=args.demo_rate)
        demo.backfill(minutes=15)
        demo.start()
    print(_banner(settings, bool(demo), auth), file=sys.stderr, flush=True)
    try:
        asyncio.run(runtime.up(settings, auth, authenticator, authorizer))
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


def _rules_apply(args: argparse.Namespace) -> int:
    """Stores alert rules, notification channels and their Secrets from a manifest, as `kubectl apply` would; a
    running observer picks them up on its next reconcile."""
    from alert_rules.model import InvalidResource
    from observer.alerting.db import open_engine
    from observer.alerting.resources import ResourceStore, load_manifest

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        documents = load_manifest(text)
        store = ResourceStore(open_engine(settings.alert_store()))
        lines = asyncio.run(store.apply(documents, default_namespace=args.namespace))
    except (OSError, ValueError, InvalidResource) as exc:
        print(f"observer rules apply: {args.file}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _rules_list(args: argparse.Namespace) -> int:
    import yaml

    from alert_rules.model import rule_to_resource
    from observer.alerting.db import open_engine
    from observer.alerting.resources import ResourceStore

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    store = ResourceStore(open_engine(settings.alert_store()))
    rules = asyncio.run(store.list_rules())
    print(yaml.safe_dump_all([rule_to_resource(rule) for rule in rules], sort_keys=False), end="")
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

    rules = commands.add_parser("rules", help="alert rules and notification channels (the alert store)")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    apply = rules_commands.add_parser("apply", help="store ObservabilityAlertRule, notification channel and Secret resources")
    apply.add_argument("-f", "--file", required=True, help="YAML manifest (- for standard input)")
    apply.add_argument("-n", "--namespace", default="default", help="namespace for resources that name none")
    apply.add_argument("--data-dir", type=Path, help="the observer's data directory (when ALERT_STORE_DSN is not set)")
    apply.set_defaults(run=_rules_apply)
    get = rules_commands.add_parser("get", help="print the stored alert rules with their status, as YAML")
    get.add_argument("--data-dir", type=Path)
    get.set_defaults(run=_rules_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
