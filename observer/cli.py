"""`observer`: the command line of the observability plane.

Everything heavy (FastAPI, pydantic, the OpenTelemetry SDK, the backends) is imported inside the command that
needs it, so `observer --help` and a mistyped flag answer at once even on a loaded machine. The defaults and
variable names shown in `observer up --help` are those of observer.config.Settings (a unit test holds them
equal), written out here so that showing them costs no import.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from access.settings import AuthSettings
    from observer.config import Settings


@dataclass(frozen=True, slots=True)
class UpOption:
    """One `observer up` flag: the Settings field it overrides, its default and the variables that set it."""

    flag: str
    field: str
    kind: type
    default: Any
    env: tuple[str, ...]
    text: str

    @property
    def help(self) -> str:
        variables = " or ".join(f"${name}" for name in self.env)
        default = (
            "none" if self.default is None else f"./{self.default}" if isinstance(self.default, Path) else self.default
        )
        return f"{self.text} (default: {variables}, else {default})"


UP_OPTIONS = (
    UpOption(
        "--host",
        "host",
        str,
        "127.0.0.1",
        ("OBSERVER_HOST", "HOST"),
        "address every port listens on; 0.0.0.0 for all interfaces",
    ),
    UpOption("--port", "port", int, 8080, ("SERVER_PORT", "PORT"), "Observer API port (REST, MCP at /mcp, /docs)"),
    UpOption(
        "--internal-port",
        "internal_port",
        int,
        8081,
        ("SERVER_INTERNAL_PORT", "INTERNAL_PORT"),
        "internal API port (alert webhook, alert rules)",
    ),
    UpOption("--otlp-port", "otlp_port", int, 4318, ("OTLP_HTTP_PORT", "OTLP_PORT"), "OTLP/HTTP receiver port"),
    UpOption(
        "--data-dir",
        "data_dir",
        Path,
        Path("data"),
        ("OBSERVER_DATA_DIR",),
        "directory of the embedded store and the SQLite alert store",
    ),
    UpOption(
        "--registry",
        "registry_file",
        Path,
        None,
        ("OBSERVER_REGISTRY_FILE",),
        "YAML file declaring namespaces, projects, components and environments",
    ),
)

CONFIG_DOCS = (
    "The configuration schema (every key, its type and default) is documented in collectors/config.py, and with "
    'the environment variables that override it in the README, section "The collector (observer collect)".'
)


UP_FIELDS = tuple(option.field for option in UP_OPTIONS)


def _settings(args: argparse.Namespace, fields: Sequence[str] = UP_FIELDS) -> Settings:
    """Environment first, then flags given on the command line."""
    from observer.config import Settings

    overrides = {field: getattr(args, field) for field in fields if getattr(args, field, None) is not None}
    return Settings().model_copy(update=overrides)


def _demo_without_idp() -> bool:
    """`up --demo` (what `make run` starts) has no identity provider to verify tokens against. Unless the
    environment says otherwise (JWT_DISABLED set either way, or a JWKS_URL), it sets JWT_DISABLED=true
    explicitly, so the demo answers curl without a token; runtime.up then logs the loud warning that goes with
    it. Returns True when it did."""
    import logging

    if "JWT_DISABLED" in os.environ or os.environ.get("JWKS_URL"):
        return False
    os.environ["JWT_DISABLED"] = "true"
    logging.getLogger("observer").warning(
        "observer up --demo: no JWKS_URL, so JWT_DISABLED=true is set for this demo process"
    )
    return True


def _auth_line(auth: AuthSettings) -> str:
    if not auth.enabled:
        return "  auth           OFF (JWT_DISABLED=true): every request is accepted; for a laptop demo only"
    return f"  auth           bearer JWT, keys from {auth.jwks_url}"


def _banner(settings: Settings, demo: bool, auth: AuthSettings | None = None) -> str:
    from adapters import registry

    public = f"http://{settings.host}:{settings.port}"
    where = registry.describe(registry.enabled(shared=settings.by_variable()))
    window = '"startTime":"\'$(date -u -d "-15 min" +%FT%TZ)\'","endTime":"\'$(date -u +%FT%TZ)\'"'
    return "\n".join(
        [
            f"Observer all-in-one is up ({where}, data in {settings.data_dir.resolve()})",
            f"  Observer API   {public}   (OpenAPI: {public}/docs)",
            f"  internal API   http://{settings.host}:{settings.internal_port}",
            f"  OTLP/HTTP      http://{settings.host}:{settings.otlp_port}/v1/{{logs,traces,metrics}}",
            "  demo traffic   "
            + ("on: namespace demo, project shop, components frontend, catalog, cart, payments" if demo else "off"),
            *([_auth_line(auth)] if auth is not None else []),
            "Try:",
            f"  curl -s {public}/api/v1/logs/query -H 'Content-Type: application/json' -d '{{{window},"
            '"searchScope":{"namespace":"demo","project":"shop","component":"cart","environment":"production"},"limit":5}\'',
            f"  curl -s {public}/api/v1alpha1/metrics/runtime-topology -H 'Content-Type: application/json' -d '{{{window},"
            '"searchScope":{"namespace":"demo","project":"shop","environment":"production"}}\'',
        ]
    )


def _up(args: argparse.Namespace) -> int:
    """Checks every setting that can stop the process, binds the three ports, and only once they accept
    connections prints that it is up (and starts the demo traffic, which sends to our own OTLP port)."""
    import threading

    from access.settings import AuthConfigError
    from audit.settings import AuditSettings
    from observer import logs, runtime
    from observer.auth.authorizers import AuthzConfigError
    from serving import PortUnavailable, bind_all, run_loop

    settings = _settings(args)
    logs.configure(settings.log_level)
    if args.demo:
        _demo_without_idp()
    try:
        settings.internal_security()
        settings.alert_store()
        AuditSettings.from_env()  # a bad AUDIT_LOG is one line and exit 2, not a traceback
        auth = settings.auth()
        authenticator = runtime.authenticator_for(auth)
        authorizer = runtime.authorizer_for(auth)
    except (AuthConfigError, AuthzConfigError, ValueError) as exc:
        print(f"observer up: {exc}", file=sys.stderr)
        return 2
    try:
        sockets = bind_all(runtime.all_in_one_listens(settings))
    except PortUnavailable as exc:
        print(f"observer up: {exc}", file=sys.stderr)
        return 1
    control = None
    if args.with_controlplane:
        try:
            control, settings = _controlplane_beside(settings)
        except ValueError as exc:  # controlplane.run.Unstartable: one line naming what to fix
            for sock in sockets:
                sock.close()
            print(f"observer up: control plane: {exc}", file=sys.stderr)
            return 2
    demo = None
    if args.demo:
        from observer.demo import DemoTraffic

        demo = DemoTraffic(endpoint=f"http://127.0.0.1:{settings.otlp_port}", rate=args.demo_rate)

    def ready() -> None:
        print(_banner(settings, bool(demo), auth), file=sys.stderr, flush=True)
        if control is not None:
            print(f"  control plane  {control.line}", file=sys.stderr, flush=True)
        if demo is not None:  # on a thread of its own: the history takes a while, and a signal must not wait for it
            threading.Thread(target=_demo_traffic, args=(demo,), name="observer-demo-backfill", daemon=True).start()

    beside = control.plane.parts(control.sockets) if control is not None else None
    try:
        companions = [control.plane.audit] if control is not None and control.plane.audit is not None else []
        run_loop(
            runtime.up(
                settings,
                auth,
                authenticator,
                authorizer,
                sockets=sockets,
                on_ready=ready,
                beside=beside,
                audit_companions=companions,
            )
        )
    finally:
        if demo is not None:
            demo.stop()
        if control is not None:
            control.plane.close()
    return 0


@dataclass
class _Beside:
    plane: Any  # controlplane.run.ControlPlane
    sockets: list[Any]
    line: str


def _controlplane_beside(settings: Settings) -> tuple[_Beside, Settings]:
    """The control plane in this process (`--with-controlplane`): its settings from the environment, in the
    observer's data directory; the observer's names and UIDs then come from it (the OpenChoreo resolver on
    loopback) instead of the embedded registry. ValueError names what stops it."""
    from pydantic import ValidationError

    from controlplane.config import ControlPlaneSettings
    from controlplane.run import Unstartable, prepare, startup_line

    try:
        cp_settings = ControlPlaneSettings(data_dir=settings.data_dir, host=settings.host)  # type: ignore[call-arg]
        plane, sockets, protection = prepare(cp_settings)
    except (Unstartable, ValidationError) as exc:
        raise ValueError(str(exc)) from exc
    resolver = f"http://127.0.0.1:{cp_settings.api_port}"
    line = f"{startup_line(cp_settings)}; API access: {protection}; the observer resolves names through it"
    return _Beside(plane, sockets, line), settings.model_copy(update={"resolver_api_url": resolver})


def _demo_traffic(demo: Any) -> None:
    """Fifteen minutes of history, then live traffic (DemoTraffic wants them in that order)."""
    demo.backfill(minutes=15)
    demo.start()


def _demo(args: argparse.Namespace) -> int:
    from observer import demo, logs

    logs.configure("info")
    return demo.run(args) or 0


def _collect(args: argparse.Namespace) -> int:

    from collectors import config as collector_config
    from collectors.run import ConfigError, collect
    from observer import logs
    from serving import PortUnavailable, run_loop

    logs.configure(os.environ.get("LOG_LEVEL", "info"))
    try:
        config = collector_config.load(args.config)
    except (OSError, ValueError) as exc:  # unreadable file, bad YAML, unknown or mistyped keys
        print(f"observer collect: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        run_loop(collect(config))
    except ConfigError as exc:
        print(f"observer collect: {exc}", file=sys.stderr)
        return 2
    except PortUnavailable as exc:
        print(f"observer collect: {exc} (set it in {args.config or 'the configuration'})", file=sys.stderr)
        return 1
    return 0


def _backend_init(args: argparse.Namespace) -> int:
    """Runs a backend's start-up installation (OpenSearch: index templates and retention) the way `observer up`
    does at start, for setup jobs; says what it installed."""
    import asyncio
    import logging

    from adapters import registry
    from adapters.protocols import BackendUnavailable
    from observer import logs
    from observer.config import Settings

    name = args.backend
    settings = Settings()
    logs.configure(settings.log_level)
    # Client libraries log every failed request with its traceback; the one line below says what failed.
    logging.getLogger(name).setLevel(logging.ERROR)
    entry = registry.entries()[name]
    context = registry.Context("admin")
    backend_settings = registry.settings_with(entry.settings, settings.by_variable())
    if not entry.enabled(backend_settings, context):
        variables = ", ".join(registry.env_names(entry.settings, field)[0] for field in entry.settings.model_fields)
        print(f"observer {name} init: {name} is not configured; set {variables} as needed", file=sys.stderr)
        return 2

    async def install() -> str:
        plane = await registry.build_plane(context, [(entry, backend_settings)])
        try:
            await plane.start()
            return plane.backends[0].health()
        finally:
            await plane.close()

    try:
        print(asyncio.run(install()))
    except BackendUnavailable as exc:
        print(f"observer {name} init: {exc}", file=sys.stderr)
        return 1
    return 0


def _store_settings(args: argparse.Namespace) -> Settings:
    from observer.config import Settings

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    return settings


def _yaml_problem(source: str, exc: Exception) -> str:
    """`file:line:column: problem`, the way compilers and editors point at a spot, from a YAML parse error."""
    import yaml

    mark = getattr(exc, "problem_mark", None)
    if not isinstance(exc, yaml.MarkedYAMLError) or mark is None:
        return f"{source}: not valid YAML: {exc}"
    where = f"{source}:{mark.line + 1}:{mark.column + 1}"
    problem = exc.problem or "not valid YAML"
    context = exc.context_mark
    also = (
        f" ({exc.context} at line {context.line + 1}, column {context.column + 1})" if exc.context and context else ""
    )
    return f"{where}: {problem}{also}"


def _rules_apply(args: argparse.Namespace) -> int:
    """Stores alert rules, notification channels and their Secrets from a manifest, as `kubectl apply` would; a
    running observer picks them up on its next reconcile."""
    import asyncio

    import yaml

    from domain.alerting import InvalidResource
    from observer.alerting.db import open_engine
    from observer.alerting.resources import ResourceStore, load_manifest

    source = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        documents = load_manifest(text)
    except OSError as exc:
        print(f"observer rules apply: {source}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"observer rules apply: {_yaml_problem(source, exc)}", file=sys.stderr)
        return 2
    except (ValueError, InvalidResource) as exc:
        print(f"observer rules apply: {source}: {exc}", file=sys.stderr)
        return 2
    try:
        store = ResourceStore(open_engine(_store_settings(args).alert_store()))
        lines = asyncio.run(store.apply(documents, default_namespace=args.namespace))
    except (OSError, ValueError, InvalidResource) as exc:
        print(f"observer rules apply: {source}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def sqlite_file(dsn: str) -> Path | None:
    """The file of a SQLite alert store DSN (a plain path or `sqlite:///path`), None for a server database."""
    if "://" not in dsn:
        return Path(dsn)
    if dsn.startswith("sqlite:///"):
        return Path(dsn[len("sqlite:///") :])
    return None


def _rules_list(args: argparse.Namespace) -> int:
    """Prints the stored rules as YAML on stdout and says on stderr which store it read and how many it found.
    A SQLite store that does not exist is reported, not created: reading must not leave a database behind."""
    import asyncio

    import yaml

    from domain.alerting import rule_to_resource
    from observer.alerting.db import open_engine
    from observer.alerting.resources import ResourceStore

    try:
        dsn = _store_settings(args).alert_store()
    except ValueError as exc:
        print(f"observer rules get: {exc}", file=sys.stderr)
        return 2
    path = sqlite_file(dsn)
    where = str(path.resolve()) if path is not None else dsn.split("@")[-1]  # never print a password
    if path is not None and not path.is_file():
        print(
            f"observer rules get: no alert store at {where}: nothing has been applied there. Run this where "
            "`observer up` keeps its data, or point at it with --data-dir DIR, $OBSERVER_DATA_DIR or $ALERT_STORE_DSN.",
            file=sys.stderr,
        )
        return 1
    rules = asyncio.run(ResourceStore(open_engine(dsn)).list_rules())
    if rules:
        print(yaml.safe_dump_all([rule_to_resource(rule) for rule in rules], sort_keys=False), end="")
    count = f"{len(rules)} alert rule{'s' if len(rules) != 1 else ''}" if rules else "no alert rules"
    print(f"observer rules get: {count} in {where}", file=sys.stderr)
    return 0


def _add_up(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser(
        "up",
        help="run the all-in-one: Observer API, internal API and OTLP receiver on the embedded backend",
        description="Runs the Observer API, the internal API and the OTLP/HTTP receiver in one process. Flags override "
        "the environment; every other setting (OpenSearch, Prometheus, authentication, alerting) is an environment "
        "variable, listed in the README.",
    )
    for option in UP_OPTIONS:
        metavar = option.flag.lstrip("-").replace("-", "_").upper()
        up.add_argument(option.flag, dest=option.field, type=option.kind, metavar=metavar, help=option.help)
    up.add_argument(
        "--demo",
        action="store_true",
        help="also generate demo telemetry for a sample platform "
        "(turns authentication off unless JWKS_URL or JWT_DISABLED is set)",
    )
    up.add_argument(
        "--with-controlplane",
        action="store_true",
        help="also run the control plane (its REST API on CONTROLPLANE_API_PORT, 8090; the cluster gateway when "
        "SERVER_CERT_PATH is set) and resolve names and UIDs through it instead of the embedded registry",
    )
    up.add_argument(
        "--demo-rate", type=float, default=5.0, metavar="RPS", help="demo requests per second (default: %(default)s)"
    )
    up.set_defaults(run=_up)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser. `observer demo`'s own options come from observer.demo, which imports the OpenTelemetry SDK,
    so they are added only when `argv` runs that command."""
    parser = argparse.ArgumentParser(
        prog="observer", description="An open observability plane for internal developer platforms."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_up(commands)

    demo_cmd = commands.add_parser(
        "demo", help="send demo telemetry with the OpenTelemetry SDK to an OTLP/HTTP endpoint"
    )
    if "demo" in argv[:1]:
        from observer import demo

        demo.add_arguments(demo_cmd)
    demo_cmd.set_defaults(run=_demo)

    collect_cmd = commands.add_parser(
        "collect",
        help="run the collector: tail container logs and receive OTLP, enrich, buffer on disk, export",
        description="Runs the collector: tails container logs, receives OTLP, enriches, buffers on disk and exports.",
        epilog=CONFIG_DOCS,
    )
    collect_cmd.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML configuration; environment variables override it (default: none, all defaults)",
    )
    collect_cmd.set_defaults(run=_collect)

    opensearch = commands.add_parser("opensearch", help="OpenSearch administration")
    opensearch_commands = opensearch.add_subparsers(dest="opensearch_command", required=True, metavar="COMMAND")
    init = opensearch_commands.add_parser(
        "init",
        help="install index templates and retention (idempotent)",
        description="Installs the observer's own index templates and ISM policies (named observer-<prefix>), never "
        "replacing OpenChoreo's. Reads OPENSEARCH_ADDRESS and the other OPENSEARCH_* variables.",
    )
    init.set_defaults(run=_backend_init, backend="opensearch")

    data_dir_help = (
        "the observer's data directory, holding alerts.db (default: $OBSERVER_DATA_DIR, else ./data; "
        "ignored when $ALERT_STORE_DSN is set)"
    )
    rules = commands.add_parser("rules", help="alert rules and notification channels (the alert store)")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    apply = rules_commands.add_parser(
        "apply", help="store ObservabilityAlertRule, notification channel and Secret resources"
    )
    apply.add_argument("-f", "--file", required=True, metavar="FILE", help="YAML manifest (- for standard input)")
    apply.add_argument(
        "-n", "--namespace", default="default", help="namespace for resources that name none (default: %(default)s)"
    )
    apply.add_argument("--data-dir", type=Path, metavar="DIR", help=data_dir_help)
    apply.set_defaults(run=_rules_apply)
    get = rules_commands.add_parser("get", help="print the stored alert rules with their status, as YAML")
    get.add_argument("--data-dir", type=Path, metavar="DIR", help=data_dir_help)
    get.set_defaults(run=_rules_list)

    adapter = commands.add_parser("adapter", help="OpenChoreo's HTTP adapter contracts")
    adapter_commands = adapter.add_subparsers(dest="adapter_command", required=True, metavar="COMMAND")
    adapter_serve_cmd = adapter_commands.add_parser(
        "serve",
        help="serve our backends through OpenChoreo's logs, tracing or metrics adapter contract",
        description="Serves the configured backends (the environment of `observer up`) through one of OpenChoreo's "
        "adapter contracts, on OpenChoreo's port for it (logs 9098, tracing 9100, metrics 9099).",
    )
    if argv[:2] == ["adapter", "serve"]:
        from observer import adapter_serve

        adapter_serve.add_arguments(adapter_serve_cmd)
        adapter_serve_cmd.set_defaults(run=adapter_serve.run)

    # The control plane and the plane agents are their own programs with their own flags (main() hands the rest
    # of the command line to them); listed here so `observer --help` shows them.
    commands.add_parser(
        "controlplane", help="run the control plane (REST API, cluster gateway, reconcilers)", add_help=False
    )
    commands.add_parser("agent", help="run a plane agent (dials the control plane's cluster gateway)", add_help=False)
    from controlplane.commands import add_commands

    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["controlplane"]:
        from controlplane.run import main as controlplane_main

        return controlplane_main(argv[1:])
    if argv[:1] == ["agent"]:
        from agents.run import main as agent_main

        return agent_main(argv[1:])
    args = build_parser(argv).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
