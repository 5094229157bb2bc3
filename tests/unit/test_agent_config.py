"""The agent's flags and credentials (agents/config.py, agents/kube.py loaders): what it runs with, and that it
refuses to start without a gateway CA it can verify against (upstream connects unverified, CPN §3)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from agents.config import ConfigError, dial_url, parse
from agents.kube import CredentialsError, from_kubeconfig, in_cluster
from agents.run import main
from devservers.tls_proxy import make_ca


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = make_ca(tmp_path, "gateway-ca")
    cert, key = make_ca(tmp_path, "agent-ca").issue(tmp_path, "agent", client=True)
    return {"ca": ca.path, "cert": cert, "key": key}


def flags(files: dict[str, Path], **overrides: str | None) -> list[str]:
    values: dict[str, str | None] = {
        "--plane-type": "observabilityplane",
        "--plane-id": "obs-1",
        "--server-url": "wss://gateway.example:8443/ws",
        "--client-cert": str(files["cert"]),
        "--client-key": str(files["key"]),
        "--server-ca": str(files["ca"]),
    }
    values.update({f"--{k.replace('_', '-')}": v for k, v in overrides.items()})
    argv: list[str] = []
    for flag, value in values.items():
        if value is not None:
            argv += [flag, value]
    return argv


def test_flags_parse_into_the_config(files: dict[str, Path], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    config = parse([*flags(files), "--kubeconfig", str(kubeconfig), "--max-concurrent", "8"])
    assert (config.plane_type, config.plane_id) == ("observabilityplane", "obs-1")
    assert config.server_ca == files["ca"] and config.client_cert == files["cert"]
    assert config.kubeconfig == kubeconfig and config.max_concurrent == 8
    assert config.gateway_tls().verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize(
    ("server_url", "dialled"),
    [
        ("wss://gw:8443/ws", "wss://gw:8443/ws?planeType=observabilityplane&planeID=obs-1"),
        ("wss://gw:8443", "wss://gw:8443/ws?planeType=observabilityplane&planeID=obs-1"),
        ("wss://gw:8443/", "wss://gw:8443/ws?planeType=observabilityplane&planeID=obs-1"),
    ],
)
def test_the_dial_url_carries_plane_type_and_id(files: dict[str, Path], server_url: str, dialled: str) -> None:
    assert dial_url(parse(flags(files, server_url=server_url))) == dialled


def test_without_server_ca_the_agent_refuses_to_start(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="--server-ca is required"):
        parse(flags(files, server_ca=None))
    assert main(flags(files, server_ca=None)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--server-ca" in err


def test_an_unreadable_server_ca_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--server-ca .*no readable file"):
        parse(flags(files, server_ca=str(tmp_path / "missing.crt")))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="--server-ca .*not a readable PEM CA"):
        parse(flags(files, server_ca=str(garbage))).gateway_tls()
    assert main(flags(files, server_ca=str(garbage))) == 2


def test_a_key_that_does_not_match_the_certificate_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    _, other_key = make_ca(tmp_path, "other").issue(tmp_path, "other", client=True)
    with pytest.raises(ConfigError, match="--client-cert"):
        parse(flags(files, client_key=str(other_key))).gateway_tls()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"plane_type": "controlplane"}, "--plane-type"),
        ({"plane_type": None}, "--plane-type"),
        ({"plane_id": "Not_A_Label"}, "--plane-id"),
        ({"plane_id": "a" * 64}, "--plane-id"),
        ({"server_url": "https://gw:8443/ws"}, "--server-url"),
        ({"client_cert": None}, "--client-cert is required"),
        ({"client_key": None}, "--client-key is required"),
        ({"max_concurrent": "0"}, "--max-concurrent"),
    ],
)
def test_invalid_settings_name_the_flag(files: dict[str, Path], override: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(flags(files, **override))


def _kubeconfig(tmp_path: Path, ca_pem: bytes, user: dict[str, str]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:6443/",
                            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_a_kubeconfig_token_file_is_read_again_on_every_request(files: dict[str, Path], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    target = from_kubeconfig(_kubeconfig(tmp_path, files["ca"].read_bytes(), {"tokenFile": str(token_file)}))
    assert target.server == "https://127.0.0.1:6443"
    assert target.bearer() == "first"
    token_file.write_text("rotated")
    assert target.bearer() == "rotated"


def test_a_kubeconfig_static_token_and_bad_kubeconfigs(files: dict[str, Path], tmp_path: Path) -> None:
    target = from_kubeconfig(_kubeconfig(tmp_path, files["ca"].read_bytes(), {"token": "static"}))
    assert target.bearer() == "static" and target.token_file is None
    broken = tmp_path / "broken"
    broken.write_text("clusters: 3")
    with pytest.raises(CredentialsError, match="not a usable kubeconfig"):
        from_kubeconfig(broken)
    plain = _kubeconfig(tmp_path, files["ca"].read_bytes(), {"token": "t"})
    plain.write_text(plain.read_text().replace("https://", "http://"))
    with pytest.raises(CredentialsError, match="https://"):
        from_kubeconfig(plain)


def test_in_cluster_uses_the_service_account_files(files: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "sa"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(files["ca"].read_bytes())
    (directory / "token").write_text("sa-token")
    target = in_cluster(directory, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert target.server == "https://10.0.0.1:443" and target.bearer() == "sa-token"
    with pytest.raises(CredentialsError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster(directory, {})
    with pytest.raises(CredentialsError, match="token"):
        in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})


def test_an_observability_plane_agent_reconciles_into_its_observer(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSERVER_INTERNAL_TOKEN", "s3cret")
    monkeypatch.delenv("OBSERVER_INTERNAL_ENDPOINT", raising=False)
    monkeypatch.delenv("OBSERVER_ENDPOINT", raising=False)
    config = parse(flags(files))
    # upstream's controller default, the token from the environment only (a flag would show in `ps`)
    assert config.observer_url == "http://observer-internal.openchoreo-observability-plane:8081"
    assert config.observer_token == "s3cret" and "s3cret" not in repr(config)
    assert config.observer_api == "resources"
    monkeypatch.setenv("OBSERVER_INTERNAL_ENDPOINT", "http://127.0.0.1:18081")
    assert parse(flags(files, observer_api="upstream")).observer_url == "http://127.0.0.1:18081"
    # a data plane has no alert rules to reconcile
    assert parse(flags(files, plane_type="dataplane")).observer_url == ""


def test_an_unknown_observer_api_is_refused(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSERVER_API", "grpc")
    with pytest.raises(ConfigError, match="--observer-api must be one of resources, upstream"):
        parse(flags(files))
