"""`observer --help` answers without importing the service, and `up --help` tells the whole truth about its flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from observer.cli import UP_OPTIONS, build_parser
from observer.config import Settings

HEAVY = (
    "fastapi",
    "pydantic",
    "pydantic_settings",
    "uvicorn",
    "opentelemetry",
    "sqlalchemy",
    "opensearchpy",
    "adapters",
    "collectors",
    "alert_rules",
    "observer.config",
    "observer.runtime",
    "observer.demo",
)


@pytest.mark.parametrize("argv", [["--help"], ["up", "--help"], ["collect", "--help"], ["rules", "get", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from observer import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_up_flags_show_the_settings_defaults_and_variables() -> None:
    """The help text is written out (so --help imports nothing); this holds it equal to Settings."""
    fields = Settings.model_fields
    for option in UP_OPTIONS:
        field = fields[option.field]
        alias = field.validation_alias
        names = tuple(alias.choices) if hasattr(alias, "choices") else (alias,)
        assert option.env == names, option.flag
        assert option.default == field.default, option.flag
    text = build_parser().parse_known_args(["up"])[0]  # parses: every flag optional
    assert text.command == "up"


def test_up_help_lists_defaults_and_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "$SERVER_PORT or $PORT, else 8080",
        "$SERVER_INTERNAL_PORT or $INTERNAL_PORT, else 8081",
        "$OTLP_HTTP_PORT or $OTLP_PORT, else 4318",
        "$OBSERVER_HOST or $HOST, else 127.0.0.1",
        "$OBSERVER_DATA_DIR, else ./data",
        "$OBSERVER_REGISTRY_FILE, else none",
        "(default: 5.0)",
    ):
        assert expected in help_text


def test_collect_help_says_where_the_configuration_schema_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["collect", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "collectors/config.py" in help_text and '"The collector (observer collect)"' in help_text
    root = Path(__file__).resolve().parents[2]
    assert (root / "collectors" / "config.py").is_file()
    assert "## The collector (`observer collect`)" in (root / "README.md").read_text()


def test_demo_options_still_parse() -> None:
    args = build_parser(["demo"]).parse_args(["demo", "--rate", "2", "--seed", "7"])
    assert args.rate == 2 and args.seed == 7
