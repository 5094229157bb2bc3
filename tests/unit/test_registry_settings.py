"""Configuration declared once: every backend's settings model is what `observer up` reads, what the collector
accepts (from its environment and from YAML), and what the README's configuration table lists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters import registry
from collectors.config import ExporterConfig, load
from observer.config import Settings

BUILTIN = registry.entries({})


def _sample(annotation: Any, default: Any) -> tuple[str, Any]:
    """A value for a field other than its default: (as the environment spells it, as the model holds it)."""
    text = repr(annotation)
    if "Literal" in text:
        choice = next(value for value in annotation.__args__ if value != default)
        return choice, choice
    if "bool" in text:
        return "true", True
    if "float" in text:
        return "7.5", 7.5
    if "int" in text:
        return "7", 7
    if "Path" in text:
        return "/tmp/sample-dir", Path("/tmp/sample-dir")
    return "http://sample:1", "http://sample:1"


def _held(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_the_collector_accepts_every_setting_observer_up_accepts(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Walks the backend's settings model: each variable `observer up` reads, set in the collector's environment,
    reaches the collector's exporter; and each field is a YAML key of `exporter.<name>`."""
    entry = BUILTIN[name]
    for field_name, field in entry.settings.model_fields.items():
        spelled, held = _sample(field.annotation, field.default)
        for variable in registry.env_names(entry.settings, field_name):
            monkeypatch.setenv(variable, spelled)
            up = entry.settings()  # what `observer up` reads
            monkeypatch.delenv(variable)
            collector = load(None, {variable: spelled}).exporter.backends[name]
            assert _held(getattr(up, field_name)) == held, variable
            assert _held(getattr(collector, field_name)) == held, variable
        from_yaml = ExporterConfig.model_validate({"backends": {name: {field_name: spelled}}}).backends[name]
        assert _held(getattr(from_yaml, field_name)) == held, field_name


def test_the_old_exporter_keys_still_work(tmp_path: Path) -> None:
    config = ExporterConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "opensearch": "https://os:9200",
            "opensearch_username": "u",
            "opensearch_password": "p",
            "opensearch_tls_skip_verify": True,
            "logs_index_prefix": "l-",
            "events_index_prefix": "e-",
            "traces_index_prefix": "t-",
            "prometheus": "http://prom:9090",
        }
    )
    embedded, opensearch, prometheus = (config.backends[name] for name in ("embedded", "opensearch", "prometheus"))
    assert embedded.data_dir == tmp_path
    assert (opensearch.address, opensearch.username, opensearch.password.get_secret_value()) == (
        "https://os:9200",
        "u",
        "p",
    )
    assert (opensearch.tls_skip_verify, opensearch.logs_prefix, opensearch.events_prefix, opensearch.traces_prefix) == (
        True,
        "l-",
        "e-",
        "t-",
    )
    assert prometheus.address == "http://prom:9090"


def test_a_section_takes_every_field_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text("exporter:\n  opensearch: {address: 'https://os:9200', ca_file: /ca.pem, timeout_s: 3}\n")
    opensearch = load(path, {"OPENSEARCH_TIMEOUT_SECONDS": "4", "OBSERVER_RETENTION_HOURS": "48"}).exporter.backends[
        "opensearch"
    ]
    assert (opensearch.address, opensearch.ca_file, opensearch.timeout_s, opensearch.retention_hours) == (
        "https://os:9200",
        "/ca.pem",
        4.0,
        48.0,
    )


def test_an_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="unknown exporter backend.*nosuch"):
        ExporterConfig.model_validate({"backends": {"nosuch": {}}})


def _readme_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def _variables(settings: Any) -> set[str]:
    return {variable for name in settings.model_fields for variable in registry.env_names(settings, name)}


def test_the_readme_configuration_lists_every_variable_of_the_settings_models_and_no_other() -> None:
    section = _readme_section()
    models = _variables(Settings) | {variable for entry in BUILTIN.values() for variable in _variables(entry.settings)}
    models.add(registry.EXTRA_BACKENDS_ENV)
    mentioned = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    assert models - mentioned == set(), "in a settings model but not in the README's Configuration section"
    table = {
        name
        for row in section.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    assert table - models == set(), "in the README's table but in no settings model"
