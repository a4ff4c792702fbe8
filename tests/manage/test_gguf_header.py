"""The streaming GGUF header reader agrees with the gguf package's full reader."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from kronk.models.gguf_header import SHORT_ARRAY, GGUFFormatError, LongArray, read_header
from tests import tiny_models


def _write(path: Path, tokens: list[str]) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "header-test")
    writer.add_uint32("llama.block_count", 3)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_bool("general.flag", True)
    writer.add_array("llama.short", [1, 2, 3])
    writer.add_array("llama.long_ints", list(range(SHORT_ARRAY * 3)))
    writer.add_token_list(tokens)
    writer.add_tensor("a", np.zeros((4, 6), dtype=np.float32))
    writer.add_tensor("b", np.zeros((5,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_values_and_tensor_sizes_match_the_gguf_reader(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(500)] + ["<fim_prefix>", "<fim_suffix>"]
    path = _write(tmp_path / "m.gguf", tokens)
    header = read_header(path, {"tokenizer.ggml.tokens": [b"<fim_prefix>", b"<fim_middle>", b"tok7"]})
    reference = gguf.GGUFReader(str(path))
    assert header.parameters == sum(int(t.n_elements) for t in reference.tensors) == 29
    meta = header.metadata
    assert meta["general.name"] == "header-test" and meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == 3 and meta["general.flag"] is True
    assert meta["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert meta["llama.short"] == [1, 2, 3]
    assert meta["llama.long_ints"] == LongArray(element_type=gguf.GGUFValueType.INT32, length=SHORT_ARRAY * 3)
    assert meta["tokenizer.ggml.tokens"].length == len(tokens)
    assert header.found_strings["tokenizer.ggml.tokens"] == {b"<fim_prefix>", b"tok7"}
    assert set(meta) == set(reference.fields) - {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}


def test_real_tiny_models_parse(tmp_path: Path) -> None:
    for path in tiny_models.write_all(tmp_path).values():
        header = read_header(path)
        reference = gguf.GGUFReader(str(path))
        assert header.parameters == sum(int(t.n_elements) for t in reference.tensors)
        assert header.metadata["general.architecture"] == reference.fields["general.architecture"].contents()


def test_bad_and_truncated_files_are_format_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(GGUFFormatError, match="magic"):
        read_header(bad)
    good = _write(tmp_path / "good.gguf", [f"t{i}" for i in range(100)])
    data = good.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:200])
    with pytest.raises(GGUFFormatError, match="past the end"):
        read_header(cut)
