"""`exporter.otlp` in the collector's configuration: the file, the environment over it, and what is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from collectors.config import load


def test_the_endpoint_variable_turns_forwarding_on_and_the_others_adjust_it():
    config = load(
        None,
        {
            "COLLECTOR_EXPORTER_OTLP_ENDPOINT": "https://observer.example:4318",
            "COLLECTOR_EXPORTER_OTLP_HEADERS": "X-Scope=plane%201, X-Other = b",
            "COLLECTOR_EXPORTER_OTLP_BEARER_TOKEN": "t0ken",
            "COLLECTOR_EXPORTER_OTLP_TIMEOUT_SECONDS": "2.5",
        },
    )
    otlp = config.exporter.otlp
    assert otlp is not None and otlp.endpoint == "https://observer.example:4318"
    assert otlp.headers == {"X-Scope": "plane 1", "X-Other": "b"}
    assert (otlp.bearer_token, otlp.timeout_s) == ("t0ken", 2.5)
    assert "t0ken" not in repr(config) and "plane" not in repr(config)


def test_a_token_for_every_node_does_not_turn_forwarding_on(tmp_path: Path):
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({"exporter": {"data_dir": str(tmp_path)}}))
    config = load(path, {"COLLECTOR_EXPORTER_OTLP_BEARER_TOKEN": "t", "COLLECTOR_OTLP_MAX_BODY_BYTES": "5"})
    assert config.exporter.otlp is None and config.receivers.otlp is None


def test_the_file_configures_it_and_the_environment_wins(tmp_path: Path):
    path = tmp_path / "collector.yaml"
    document = {
        "receivers": {"otlp": None},
        "exporter": {"otlp": {"endpoint": "http://a:4318", "tls_skip_verify": True}},
    }
    path.write_text(yaml.safe_dump(document))
    config = load(path, {"COLLECTOR_EXPORTER_OTLP_ENDPOINT": "http://b:4318", "COLLECTOR_OTLP_MAX_BODY_BYTES": "1024"})
    assert config.exporter.otlp is not None
    assert (config.exporter.otlp.endpoint, config.exporter.otlp.tls_skip_verify) == ("http://b:4318", True)
    assert config.receivers.otlp is not None and config.receivers.otlp.max_body_bytes == 1024


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"COLLECTOR_EXPORTER_OTLP_ENDPOINT": "observer:4318"}, "http:// or https://"),
        ({"COLLECTOR_EXPORTER_OTLP_ENDPOINT": "http://a", "COLLECTOR_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value"),
        (
            {"COLLECTOR_EXPORTER_OTLP_ENDPOINT": "http://a", "COLLECTOR_EXPORTER_OTLP_TIMEOUT_SECONDS": "0"},
            "greater than 0",
        ),
    ],
)
def test_unusable_settings_are_errors_that_say_why(environ: dict[str, str], says: str):
    with pytest.raises(ValidationError, match=says):
        load(None, environ)
