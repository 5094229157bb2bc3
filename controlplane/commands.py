"""`observer apply -f | get | delete`: the command-line side of controlplane/client.py.

Where the control plane is: `--server` or CONTROLPLANE_URL (default http://127.0.0.1:8090); its bearer token:
`--token` or CONTROLPLANE_TOKEN. A TLS control plane is verified against the system CAs or `--cacert`;
`--insecure-skip-tls-verify` exists, as in kubectl, and must be typed out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import yaml

from controlplane.client import ControlPlaneClient, ManifestError, Outcome, find_kind, load_documents

DEFAULT_SERVER = "http://127.0.0.1:8090"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds apply, get and delete to the `observer` command."""
    apply = commands.add_parser("apply", help="create or update control-plane resources from manifests (kubectl-style)")
    apply.add_argument("-f", "--filename", action="append", required=True, metavar="FILE", help="YAML (- = stdin)")
    _common(apply)
    apply.set_defaults(run=_apply)

    get = commands.add_parser("get", help="print control-plane resources")
    get.add_argument("kind", help="a kind, its plural or lowercase name: projects, component, releasebindings ...")
    get.add_argument("name", nargs="?", default="", help="one object (default: all of the kind)")
    get.add_argument("-o", "--output", choices=("table", "yaml", "json"), default="table")
    _common(get)
    get.set_defaults(run=_get)

    delete = commands.add_parser("delete", help="delete control-plane resources by manifest or by kind and name")
    delete.add_argument("-f", "--filename", action="append", metavar="FILE", help="YAML (- = stdin)")
    delete.add_argument("kind", nargs="?", default="", help="a kind (with NAME), instead of -f")
    delete.add_argument("name", nargs="?", default="")
    _common(delete)
    delete.set_defaults(run=_delete)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default="default", help="for documents that name none (default: default)")
    parser.add_argument(
        "--server", default=os.environ.get("CONTROLPLANE_URL", DEFAULT_SERVER), help="control plane URL"
    )
    parser.add_argument("--token", default=os.environ.get("CONTROLPLANE_TOKEN", ""), help="bearer token")
    parser.add_argument("--cacert", default="", help="CA bundle for a TLS control plane")
    parser.add_argument(
        "--insecure-skip-tls-verify", action="store_true", help="do not verify TLS (never in production)"
    )


def _client(args: argparse.Namespace) -> ControlPlaneClient:
    verify: bool | str = False if args.insecure_skip_tls_verify else (args.cacert or True)
    return ControlPlaneClient(args.server, token=args.token, verify=verify)


def _report(outcomes: Sequence[Outcome]) -> int:
    for outcome in outcomes:
        print(outcome.line, file=sys.stderr if outcome.failed else sys.stdout)
    return 1 if any(outcome.failed for outcome in outcomes) else 0


def _apply(args: argparse.Namespace) -> int:
    return _run(args, lambda client: _report(client.apply(load_documents(args.filename), args.namespace)))


def _delete(args: argparse.Namespace) -> int:
    if bool(args.filename) == bool(args.kind):
        print("observer delete: give either -f FILE or KIND NAME", file=sys.stderr)
        return 2
    if args.filename:
        return _run(args, lambda client: _report(client.delete(load_documents(args.filename), args.namespace)))
    if not args.name:
        print("observer delete: KIND needs a NAME", file=sys.stderr)
        return 2
    return _run(args, lambda client: _report([client.delete_named(find_kind(args.kind), args.name, args.namespace)]))


def _get(args: argparse.Namespace) -> int:
    def show(client: ControlPlaneClient) -> int:
        items = client.get(find_kind(args.kind), args.namespace, args.name)
        # Several objects print as a `kind: List`, which `observer apply -f` reads back.
        shown = items[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": items}
        if args.output == "json":
            print(json.dumps(shown, indent=2))
        elif args.output == "yaml":
            print(yaml.safe_dump(shown, sort_keys=False), end="")
        else:
            print(_table(items))
        return 0

    return _run(args, show)


def _table(items: Sequence[dict[str, Any]]) -> str:
    rows = [("NAMESPACE", "NAME", "READY", "CREATED")]
    for item in items:
        metadata = item.get("metadata") or {}
        conditions = (item.get("status") or {}).get("conditions") or []
        ready = next((c.get("status", "") for c in conditions if c.get("type") == "Ready"), "")
        rows.append(
            (metadata.get("namespace", ""), metadata.get("name", ""), ready, metadata.get("creationTimestamp", ""))
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        client = _client(args)
    except (OSError, ValueError) as exc:
        print(f"observer {args.command}: {exc}", file=sys.stderr)
        return 2
    try:
        return int(body(client))
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: the control plane at {args.server} cannot be reached: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
