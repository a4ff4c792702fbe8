"""KRONK_TEST_REQUIRE: a missing resource skips its test, or fails it when that kind is required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import require

REPO = Path(__file__).resolve().parents[1]


def test_parse_the_switch() -> None:
    assert require.parse(None) == require.parse("") == frozenset()
    assert require.parse("all") == frozenset(require.KINDS)
    assert require.parse(" Libs, models ") == {"libs", "models"}
    with pytest.raises(ValueError, match="unknown gpu"):
        require.parse("libs,gpu")


@pytest.mark.parametrize("value, outcome", [(None, "1 skipped"), ("libs", "1 skipped"), ("all", "1 failed"),
                                            ("redis,sdist", "1 failed")])
def test_a_missing_resource_skips_unless_required(tmp_path: Path, value: str | None, outcome: str) -> None:
    (tmp_path / "test_probe.py").write_text(
        "from tests.require import missing\n\n\ndef test_probe():\n    missing('redis', 'no redis-server here')\n")
    env = {key: val for key, val in os.environ.items() if key != require.ENV}
    if value is not None:
        env[require.ENV] = value
    env["PYTHONPATH"] = str(REPO)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the probe needs none; saves seconds per run
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsf", "test_probe.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in proc.stdout, proc.stdout
    if outcome == "1 failed":
        assert "no redis-server here [KRONK_TEST_REQUIRE requires redis]" in proc.stdout
    else:
        assert "SKIPPED" in proc.stdout and "no redis-server here" in proc.stdout


def test_a_bad_value_stops_the_run(tmp_path: Path) -> None:
    env = {**os.environ, require.ENV: "everything", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--co",
                           str(REPO / "tests" / "test_require.py")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 4  # pytest's usage error
    assert "KRONK_TEST_REQUIRE='everything': unknown everything" in proc.stderr
