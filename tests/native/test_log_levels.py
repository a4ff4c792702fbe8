"""llama.cpp's log goes to the `llama.cpp` Python logger at the configured level: its debug
chatter only at DEBUG, errors always; CONT fragments (the load progress dots) join into
one record. Checked with real model loads, and through the server's --log-level setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kronk._native.log import _LogSink
from kronk.errors import ModelLoadError
from kronk.llama import Model, Projector
from tests import tiny_models

pytestmark = pytest.mark.requires_libs

LOGGER = logging.getLogger("llama.cpp")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def levels(self) -> set[str]:
        return {record.levelname for record in self.records}

    def messages(self, level: str | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelname == level]


@pytest.fixture
def captured(lib_dir: Path) -> Iterator[_Records]:
    """Records of the `llama.cpp` logger; its level is restored afterwards."""
    handler = _Records()
    level = LOGGER.level
    LOGGER.addHandler(handler)
    yield handler
    LOGGER.removeHandler(handler)
    LOGGER.setLevel(level)


def _corrupt_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 64)  # a header with -1 tensors
    return path


def _load_and_free(path: Path) -> None:
    Model.load(path).close()


def test_debug_level_shows_everything_and_joins_fragments(captured: _Records, tiny: dict[str, Path]) -> None:
    LOGGER.setLevel(logging.DEBUG)
    _load_and_free(tiny["chat"])
    assert {"DEBUG", "INFO"} <= captured.levels()
    assert any(m.startswith("llama_model_loader: loaded meta data") for m in captured.messages("INFO"))
    assert any("init_tokenizer" in m for m in captured.messages("DEBUG"))
    # the load progress arrives as single "." fragments (level CONT) and ends with a newline
    dots = [m for m in captured.messages() if m and set(m) == {"."}]
    assert len(dots) == 1 and len(dots[0]) > 1, dots
    assert all(m.strip() for m in captured.messages())


def test_info_level_hides_debug_messages(captured: _Records, tiny: dict[str, Path]) -> None:
    LOGGER.setLevel(logging.INFO)
    _load_and_free(tiny["chat"])
    assert captured.levels() == {"INFO"}


def test_warning_level_hides_the_chatter_but_errors_always_show(captured: _Records, tiny: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    for level in (logging.WARNING, logging.ERROR):
        LOGGER.setLevel(level)
        captured.records.clear()
        _load_and_free(tiny["chat"])
        assert captured.records == []
        with pytest.raises(ModelLoadError):
            Model.load(_corrupt_gguf(tmp_path))
        assert captured.levels() == {"ERROR"}
        assert any("error loading model" in m for m in captured.messages("ERROR")), captured.messages()


def test_mtmd_messages_take_the_same_route(captured: _Records, tiny: dict[str, Path], tmp_path: Path) -> None:
    projector_path = tiny_models.write_llava_projector(tmp_path / "mmproj.gguf")
    model = Model.load(tiny["chat"])
    try:
        LOGGER.setLevel(logging.INFO)
        captured.records.clear()
        Projector(projector_path, model, use_gpu=False).close()
        assert any(m.startswith("clip_model_loader") for m in captured.messages("INFO")), captured.messages()
        LOGGER.setLevel(logging.WARNING)
        captured.records.clear()
        Projector(projector_path, model, use_gpu=False).close()
        assert captured.levels() <= {"WARNING", "ERROR"}
    finally:
        model.close()


@pytest.mark.parametrize(("setting", "debug_shown"), [("debug", True), ("info", False), ("warning", False)])
def test_the_servers_log_level_setting(captured: _Records, tiny: dict[str, Path], tmp_path: Path,
                                       setting: str, debug_shown: bool) -> None:
    from kronk.server.runner import _NOISY, configure_logging

    root = logging.getLogger()
    handlers, levels = root.handlers[:], {name: logging.getLogger(name).level for name in ("", *_NOISY)}
    try:
        configure_logging(setting)
        _load_and_free(tiny["chat"])
        assert ("DEBUG" in captured.levels()) is debug_shown
        assert ("INFO" in captured.levels()) is debug_shown  # llama.cpp's info is chatter too
        captured.records.clear()
        with pytest.raises(ModelLoadError):
            Model.load(_corrupt_gguf(tmp_path))
        assert "ERROR" in captured.levels()
    finally:
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_fragments_without_a_newline_are_flushed_by_the_next_message(captured: _Records) -> None:
    LOGGER.setLevel(logging.DEBUG)
    sink = _LogSink()
    sink.on_message(2, b"loading\n")
    sink.on_message(5, b".")
    sink.on_message(5, b".")
    sink.on_message(4, b"failed\n")  # the dots never got their newline
    sink.on_message(1, b"detail\n")
    assert [(r.levelname, r.getMessage()) for r in captured.records] == [
        ("INFO", "loading"), ("INFO", ".."), ("ERROR", "failed"), ("DEBUG", "detail")]
