"""`observer rules apply` and `rules get` answer a user's mistakes in one line that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from observer.cli import main

CHANNEL_AND_RULE = """\
apiVersion: openchoreo.dev/v1alpha1
kind: ObservabilityAlertsNotificationChannel
metadata: {name: ops-hook, namespace: acme}
spec: {environment: prod, type: webhook, webhookConfig: {url: "http://127.0.0.1:9/hook"}}
---
apiVersion: openchoreo.dev/v1alpha1
kind: ObservabilityAlertRule
metadata:
  name: cart-errors
  namespace: acme
  labels:
    openchoreo.dev/component-uid: 60c42b86-37db-419b-864f-f2d41e54dac6
    openchoreo.dev/environment-uid: 88df0197-709a-4deb-bb5e-64084992180d
    openchoreo.dev/project-uid: d60c2b14-7312-4d07-9c48-f5b49180afa6
spec:
  name: cart-errors
  severity: critical
  enabled: true
  source: {type: log, query: error}
  condition: {window: 5m, interval: 1m, operator: gt, threshold: 10}
  actions: {notifications: {channels: [ops-hook]}}
"""

SECRET_ONLY = "apiVersion: v1\nkind: Secret\nmetadata: {name: hook, namespace: acme}\nstringData: {token: t}\n"


def test_invalid_yaml_names_file_line_column_and_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "rules.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: [unclosed\n  namespace: acme\n")
    assert main(["rules", "apply", "-f", str(manifest), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"observer rules apply: {manifest}:5:")
    assert "expected ',' or ']'" in line and "line 4" in line  # the problem, and where the flow it breaks began
    assert not (tmp_path / "data").exists(), "a manifest that does not parse opens no store"


def test_tabs_in_yaml_point_at_the_tab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "rules.yaml"
    manifest.write_text("kind: Secret\nmetadata:\n\tname: x\n")
    assert main(["rules", "apply", "-f", str(manifest), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:3:1: found character '\\t' that cannot start any token" in err


def test_a_missing_manifest_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "apply", "-f", str(tmp_path / "nope.yaml"), "--data-dir", str(tmp_path)]) == 2
    assert "nope.yaml: cannot read it: No such file or directory" in capsys.readouterr().err


def test_get_outside_a_data_directory_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OBSERVER_DATA_DIR", raising=False)
    monkeypatch.delenv("ALERT_STORE_DSN", raising=False)
    assert main(["rules", "get"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no alert store at {tmp_path / 'data' / 'alerts.db'}" in err and "--data-dir" in err
    assert not (tmp_path / "data").exists()


def test_get_reports_an_empty_store_and_counts_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    secret, both = tmp_path / "secret.yaml", tmp_path / "rules.yaml"
    secret.write_text(SECRET_ONLY)
    both.write_text(CHANNEL_AND_RULE)
    assert main(["rules", "apply", "-f", str(secret), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["rules", "get", "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"no alert rules in {(data / 'alerts.db').resolve()}" in err

    assert main(["rules", "apply", "-f", str(both), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["rules", "get", "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "name: cart-errors" in out
    assert f"1 alert rule in {(data / 'alerts.db').resolve()}" in err
