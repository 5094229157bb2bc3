"""The test lanes (tests/conftest.py): markers come from the directory, and the unit lane refuses a server.

The refusals are proven on real pytest runs: a probe test file is written into tests/unit (where the guard
applies), collected by a pytest subprocess, and removed again.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TESTS, lane_of

ROOT = TESTS.parent


@pytest.mark.parametrize(
    ("path", "lane"),
    [
        ("unit/test_x.py", "unit"),
        ("contract/test_logs.py", "contract"),
        ("integration/test_authn.py", "integration"),
        ("e2e/test_collector.py", "e2e"),
        ("conftest.py", None),
    ],
)
def test_a_test_file_belongs_to_the_lane_of_its_directory(path: str, lane: str | None) -> None:
    assert lane_of(TESTS / path) == lane


def test_a_file_outside_tests_has_no_lane(tmp_path: Path) -> None:
    assert lane_of(tmp_path / "unit" / "test_x.py") is None


@pytest.fixture
def probe() -> Iterator[Path]:
    path = TESTS / "unit" / f"test_lanes_probe_{uuid.uuid4().hex[:8]}.py"
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def stray() -> Iterator[Path]:
    path = TESTS / f"test_lanes_probe_{uuid.uuid4().hex[:8]}.py"
    yield path
    path.unlink(missing_ok=True)


def collect(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", *args, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_unit_test_asking_for_a_server_fixture_is_a_collection_error(probe: Path) -> None:
    probe.write_text("def test_needs_opensearch(opensearch_url):\n    pass\n")
    result = collect(probe)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "uses ['opensearch_url']" in result.stderr


def test_a_unit_module_importing_a_server_starter_is_refused(probe: Path) -> None:
    probe.write_text("import devservers.prometheus\n\n\ndef test_nothing():\n    pass\n")
    result = collect(probe)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "devservers.prometheus" in result.stderr


def test_markers_select_exactly_their_directory(probe: Path) -> None:
    probe.write_text("def test_plain():\n    pass\n")
    selected = collect(probe, "-m", "unit")
    assert selected.returncode == pytest.ExitCode.OK and probe.name in selected.stdout, selected.stdout
    others = collect(probe, "-m", "integration or contract or e2e")
    assert others.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, others.stdout


def test_a_test_outside_the_lane_directories_is_refused(stray: Path) -> None:
    stray.write_text("def test_plain():\n    pass\n")
    result = collect(stray)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "is in no lane" in result.stderr
