"""The gateway's settings of `observer controlplane` (controlplane/config.py, run.py): durations as Go writes them,
the gateway off without a certificate (and said so), and a refusal naming the variable that is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane import run
from controlplane.config import ControlPlaneSettings, seconds


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "SERVER_CERT_PATH",
        "SERVER_KEY_PATH",
        "INTERNAL_MTLS_ENABLED",
        "INTERNAL_CLIENT_CA_PATH",
        "HEARTBEAT_INTERVAL",
        "HEARTBEAT_TIMEOUT",
        "AGENT_SERVER_PORT",
        "AGENT_INTERNAL_PORT",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("JWT_DISABLED", "true")


def test_durations_are_seconds_or_go_durations() -> None:
    assert seconds("30") == 30.0 and seconds(12) == 12
    assert seconds("1m30s") == 90.0 and seconds("500ms") == 0.5 and seconds("2h") == 7200.0
    assert seconds("30 seconds") == "30 seconds"  # left for pydantic to refuse
    settings = ControlPlaneSettings(HEARTBEAT_INTERVAL="10s", HEARTBEAT_TIMEOUT="1m")  # type: ignore[call-arg]
    assert (settings.heartbeat_interval, settings.heartbeat_timeout) == (10.0, 60.0)


def test_without_a_certificate_the_gateway_is_off_and_the_startup_line_says_so() -> None:
    settings = ControlPlaneSettings()
    assert not settings.gateway_enabled and settings.gateway_problems() == []
    assert [listen.port for listen in run.listens(settings)] == [8090]
    assert "cluster gateway off (SERVER_CERT_PATH is not set)" in run.startup_line(settings)


def test_with_a_certificate_every_port_is_bound_and_described(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("tls.crt", "tls.key", "ca.crt"))
    for path in (cert, key, ca):
        path.write_text("x")
    settings = ControlPlaneSettings(  # type: ignore[call-arg]
        SERVER_CERT_PATH=str(cert), SERVER_KEY_PATH=str(key), INTERNAL_CLIENT_CA_PATH=str(ca)
    )
    assert settings.gateway_problems() == []
    listens = run.listens(settings)
    assert [(listen.port, listen.setting) for listen in listens] == [
        (8090, "--port or CONTROLPLANE_API_PORT"),
        (8443, "AGENT_SERVER_PORT"),
        (8444, "AGENT_INTERNAL_PORT"),
    ]
    line = run.startup_line(settings)
    assert "agents on 127.0.0.1:8443" in line and "internal API on 127.0.0.1:8444 (mutual TLS)" in line


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SERVER_CERT_PATH": "{cert}"}, "SERVER_KEY_PATH is required"),
        ({"SERVER_CERT_PATH": "{cert}", "SERVER_KEY_PATH": "{cert}"}, "INTERNAL_CLIENT_CA_PATH is required"),
        (
            {"SERVER_CERT_PATH": "{cert}", "SERVER_KEY_PATH": "{dir}/nope.key", "INTERNAL_MTLS_ENABLED": "false"},
            "SERVER_KEY_PATH: no such file",
        ),  # fmt: skip
        (
            {
                "SERVER_CERT_PATH": "{cert}",
                "SERVER_KEY_PATH": "{cert}",
                "INTERNAL_MTLS_ENABLED": "false",
                "HEARTBEAT_INTERVAL": "90s",
            },
            "HEARTBEAT_TIMEOUT must be longer",
        ),  # fmt: skip
    ],
)
def test_the_process_refuses_to_start_naming_the_variable(
    env: dict[str, str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    for variable, value in env.items():
        monkeypatch.setenv(variable, value.format(cert=cert, dir=tmp_path))
    assert run.main(["--port", "18091", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "controlplane.db").exists()  # refused before anything was opened
