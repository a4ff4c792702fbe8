"""Tiny random-weight GGUF models for fast tests, written with the `gguf` package.

A llama-architecture model of a few hundred KB loads and decodes in milliseconds and
is deterministic under greedy sampling, which is all the binding and engine tests
need. `write_chat_model` adds a ChatML template and the ChatML special tokens;
`write_fim_model` adds FIM tokens. The vocabulary is SentencePiece-style with byte
fallback tokens so any UTF-8 text tokenizes (and a random model can emit partial
multi-byte characters, which the UTF-8 streaming tests rely on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = (
    "the a an and or of to in is it you he she we they this that hello world yes no "
    "cat dog sun moon red blue green one two three four five json name value true false "
    "null call tool weather city paris london answer question think because time day"
).split()

_SPECIAL_CHAT = ["<|im_start|>", "<|im_end|>"]
_SPECIAL_FIM = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>"]

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6


def _vocab(extra_special: list[str]) -> tuple[list[str], list[float], list[int]]:
    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    for special in extra_special:
        tokens.append(special)
        types.append(TOKEN_CONTROL)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(TOKEN_BYTE)
    pieces: list[str] = ["▁"]
    for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?:;'\"{}[]()-_/\n":
        pieces.append(char)
    for word in _WORDS:
        pieces.append("▁" + word)
        pieces.append(word)
    pieces.extend(["é", "ü", "日本", "语", "😀"])
    seen = set(tokens)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(TOKEN_NORMAL)
    scores = [0.0 if t != TOKEN_NORMAL else -float(i) / 10.0 for i, t in enumerate(types)]
    # longer pieces get higher scores so SPM merges prefer whole words
    for i, tok in enumerate(tokens):
        if types[i] == TOKEN_NORMAL:
            scores[i] = float(len(tok)) - i / 1000.0
    return tokens, scores, types


def write_llama_model(
    path: Path,
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_ctx_train: int = 2048,
    seed: int = 0,
    chat_template: str | None = None,
    fim: bool = False,
    name: str = "tiny-llama",
    pooling_type: int | None = None,
) -> Path:
    """Write a random-weight llama GGUF (f32 weights) and return its path."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    special = list(_SPECIAL_CHAT) + (list(_SPECIAL_FIM) if fim else [])
    tokens, scores, types = _vocab(special)
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling_type is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling_type))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index("<|im_end|>") if chat_template else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)
    if fim:
        writer.add_uint32("tokenizer.ggml.fim_pre_token_id", tokens.index("<|fim_prefix|>"))
        writer.add_uint32("tokenizer.ggml.fim_suf_token_id", tokens.index("<|fim_suffix|>"))
        writer.add_uint32("tokenizer.ggml.fim_mid_token_id", tokens.index("<|fim_middle|>"))
        writer.add_uint32("tokenizer.ggml.fim_pad_token_id", tokens.index("<|fim_pad|>"))

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    head_dim = n_embd // n_head
    n_embd_kv = head_dim * n_head_kv
    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, n_embd))
    for layer in range(n_layer):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(prefix + "attn_q.weight", weight(n_embd, n_embd))
        writer.add_tensor(prefix + "attn_k.weight", weight(n_embd_kv, n_embd))
        writer.add_tensor(prefix + "attn_v.weight", weight(n_embd_kv, n_embd))
        writer.add_tensor(prefix + "attn_output.weight", weight(n_embd, n_embd))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_chat_model(path: Path, **kwargs: object) -> Path:
    """A tiny llama with the ChatML template (like SmolLM2's)."""
    return write_llama_model(path, chat_template=CHATML_TEMPLATE, name="tiny-chat", **kwargs)  # type: ignore[arg-type]


def write_fim_model(path: Path, **kwargs: object) -> Path:
    """A tiny llama with FIM prefix/suffix/middle tokens."""
    return write_llama_model(path, fim=True, name="tiny-fim", **kwargs)  # type: ignore[arg-type]


def write_embedding_model(path: Path, **kwargs: object) -> Path:
    """A tiny llama whose metadata asks for mean pooling (an embedding model)."""
    return write_llama_model(path, pooling_type=1, name="tiny-embed", **kwargs)  # type: ignore[arg-type]


def write_llava_projector(path: Path, *, text_n_embd: int = 64, seed: int = 1) -> Path:
    """A random-weight LLaVA-style vision projector (CLIP ViT + 2-layer MLP) for a text model
    of width `text_n_embd`: 32x32 images in 8x8 patches -> 16 embeddings per image."""
    import gguf

    n_embd, n_head, n_ff, n_layer, image_size, patch = 32, 2, 64, 2, 32, 8
    n_patches = (image_size // patch) ** 2
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "tiny-llava-projector")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch)
    writer.add_uint32("clip.vision.embedding_length", n_embd)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff)
    writer.add_uint32("clip.vision.block_count", n_layer)
    writer.add_uint32("clip.vision.projection_dim", text_n_embd)
    writer.add_uint32("clip.vision.attention.head_count", n_head)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_tensor("v.patch_embd.weight", weight(n_embd, 3, patch, patch))
    writer.add_tensor("v.position_embd.weight", weight(n_patches, n_embd))
    writer.add_tensor("v.pre_ln.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("v.pre_ln.bias", zeros(n_embd))
    for layer in range(n_layer):
        prefix = f"v.blk.{layer}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(prefix + name + ".weight", weight(n_embd, n_embd))
            writer.add_tensor(prefix + name + ".bias", zeros(n_embd))
        for name in ("ln1", "ln2"):
            writer.add_tensor(prefix + name + ".weight", np.ones(n_embd, dtype=np.float32))
            writer.add_tensor(prefix + name + ".bias", zeros(n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.bias", zeros(n_ff))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))
        writer.add_tensor(prefix + "ffn_down.bias", zeros(n_embd))
    writer.add_tensor("mm.0.weight", weight(text_n_embd, n_embd))
    writer.add_tensor("mm.0.bias", zeros(text_n_embd))
    writer.add_tensor("mm.2.weight", weight(text_n_embd, text_n_embd))
    writer.add_tensor("mm.2.bias", zeros(text_n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def ppm_image(width: int = 32, height: int = 32, seed: int = 0) -> bytes:
    """A small random RGB image as a binary PPM file (stb_image, used by mtmd, reads it)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return f"P6\n{width} {height}\n255\n".encode() + pixels.tobytes()


def write_all(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    return {
        "chat": write_chat_model(folder / "tiny-chat.gguf"),
        "base": write_llama_model(folder / "tiny-base.gguf"),
        "fim": write_fim_model(folder / "tiny-fim.gguf"),
        "embed": write_embedding_model(folder / "tiny-embed.gguf"),
    }
