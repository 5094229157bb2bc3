"""`observer opensearch init` against an OpenSearch it cannot reach: one line naming the address, exit 1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from observer.cli import main


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """The command configures the process's logging as a command line should; the test process gets its own back."""
    root, quiet = logging.getLogger(), logging.getLogger("opensearch")
    handlers, level, quiet_level = root.handlers[:], root.level, quiet.level
    yield
    root.handlers[:], quiet.level = handlers, quiet_level
    root.setLevel(level)


def test_unreachable_opensearch_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENSEARCH_ADDRESS", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OPENSEARCH_TIMEOUT_SECONDS", "2")
    assert main(["opensearch", "init"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"observer opensearch init: OpenSearch at http://127.0.0.1:{port} is not usable")
    )


def test_without_an_address_it_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENSEARCH_ADDRESS", raising=False)
    assert main(["opensearch", "init"]) == 2
    assert "set OPENSEARCH_ADDRESS" in capsys.readouterr().err
