"""Helpers shared by the benchmark scripts: where the model, libs and reference tools
are, the few statistics they need, the target checks and the results file.

Every script compares Kronk against a llama.cpp reference run in the same process
tree with the same libs, model and threads, so the helpers here only locate things
and report; they never time anything themselves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from kronk.errors import LibraryNotFoundError
from kronk.paths import atomic_write_text

MODEL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"


def default_model() -> Path:
    """`$KRONK_TEST_MODELS/<SmolLM2>` (default folder ~/.cache/kronk-test-models)."""
    folder = Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))
    return folder / MODEL_FILE


def check_model(path: Path) -> Path:
    """The model path, or exit with a clear message when it is not a file."""
    path = path.expanduser()
    if not path.is_file():
        raise SystemExit(f"model not found: {path} (pass --model or run scripts/fetch_models.py)")
    return path


def lib_dir() -> Path:
    """The llama.cpp libs Kronk loads (KRONK_LIB_PATH or the installed ones)."""
    from kronk._native.loader import find_lib_dir

    try:
        return find_lib_dir()
    except LibraryNotFoundError as exc:
        raise SystemExit(f"{exc} (or set KRONK_LIB_PATH to a folder holding libllama)") from None


def tools_dir(explicit: Path | None) -> Path:
    """Where the llama.cpp tools are: --tools-dir, else `<lib dir>/bin`, else the lib dir."""
    if explicit is not None:
        return explicit.expanduser()
    libs = lib_dir()
    return libs / "bin" if (libs / "bin").is_dir() else libs


def find_tool(folder: Path, name: str) -> Path:
    """The executable `name` in `folder`, or exit naming what is missing."""
    path = folder / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SystemExit(f"{name} not found in {folder} (pass --tools-dir, or install the tools: kronk libs --with-tools)")
    return path


def tool_env(libs: Path) -> dict[str, str]:
    """Environment for a reference tool: it must load the same libs as we do."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: a comma-separated list of positive integers (`1,4,8`)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,4,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 1,4,8, got {text!r}")
    return values


def median(values: Iterable[float]) -> float:
    items = [v for v in values if not math.isnan(v)]
    return statistics.median(items) if items else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    items = sorted(values)
    if not items:
        return math.nan
    rank = (len(items) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(items) - 1)
    return items[low] + (items[high] - items[low]) * (rank - low)


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else math.nan


@dataclass(slots=True)
class Check:
    """One target: `value` (a ratio) compared with `target` by `op`."""

    name: str
    ours: float
    theirs: float
    value: float
    op: Literal[">=", "<="]
    target: float
    unit: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A plain, aligned text table (first column left, the rest right)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("-" * len(line))
    for row in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def print_checks(checks: Sequence[Check], ours_label: str = "kronk", theirs_label: str = "llama.cpp") -> bool:
    """The targets table with PASS/FAIL; True when every target passed."""
    rows = [
        [c.name, c.theirs, c.ours, c.value, f"{c.op} {c.target:g}", "PASS" if c.passed else "FAIL"]
        for c in checks
    ]
    print_table(["target", theirs_label, ours_label, "ratio", "goal", "result"], rows, title="Targets (medians)")
    return all(c.passed for c in checks)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results atomically (a reader never sees half a file)."""
    atomic_write_text(path.expanduser(), json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")


def _clean(value: Any) -> Any:
    """JSON-safe copy: paths as text, NaN (a missing measurement) as null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
