"""The server's pid file: written atomically, stale or broken files are ignored and removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kronk.server import process


def test_record_round_trip_and_removal_only_by_owner(isolated_home: Path) -> None:
    record = process.write_record("http://127.0.0.1:1234", None)
    assert record.pid == os.getpid()
    assert process.read_record() == record
    process.remove_record_of(record.pid + 1)
    assert process.pid_path().exists()
    process.remove_record()
    assert not process.pid_path().exists()


def test_stale_and_garbage_pid_files_are_cleaned_up(isolated_home: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    path = process.pid_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": child.pid, "url": "http://x", "started_at": 0}))
    assert process.read_record() is None
    assert not path.exists()
    path.write_text("{not json")
    assert process.read_record() is None
    assert not path.exists()


def test_tail_reads_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert process.tail(log, 3) == "line 997\nline 998\nline 999"
    assert process.tail(log.with_name("missing.log"), 3) == ""
