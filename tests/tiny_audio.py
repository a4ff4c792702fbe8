"""A tiny random-weight Whisper-style audio projector (`qwen2a`) and WAV clips, for the
audio-input tests, written with the `gguf` package.

libmtmd turns any clip into a 30 s log-mel spectrogram (128 bins x 3000 frames); the
encoder's stride-2 convolution and the projector's average pool make that 750 embeddings
of the text model's width. The weights are random: what is tested is the plumbing.
(Not an `ultravox` projector: one with stack factor 8 makes libmtmd abort the process.)
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

N_MEL = 128
N_POSITIONS = 1500
"""Encoder positions after the stride-2 convolution of 3000 mel frames (30 s)."""
TOKENS_PER_CLIP = 750


def write_qwen2a_projector(path: Path, *, text_n_embd: int = 64, seed: int = 2) -> Path:
    """A random qwen2a audio projector for a text model of width `text_n_embd`."""
    import gguf

    n_embd, n_head, n_ff, n_layer = 16, 2, 32, 1
    rng = np.random.default_rng(seed)

    def weight(*shape: int, dtype: type = np.float32) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(dtype)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "tiny-qwen2a-projector")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("clip.projector_type", "qwen2a")
    writer.add_bool("clip.has_audio_encoder", True)
    writer.add_uint32("clip.audio.num_mel_bins", N_MEL)
    writer.add_uint32("clip.audio.embedding_length", n_embd)
    writer.add_uint32("clip.audio.feed_forward_length", n_ff)
    writer.add_uint32("clip.audio.block_count", n_layer)
    writer.add_uint32("clip.audio.projection_dim", text_n_embd)
    writer.add_uint32("clip.audio.attention.head_count", n_head)
    writer.add_float32("clip.audio.attention.layer_norm_epsilon", 1e-5)
    # the two convolutions (kernel 3; the second has stride 2); f16 kernels as converters write them
    writer.add_tensor("a.conv1d.1.weight", weight(n_embd, N_MEL, 3, dtype=np.float16))
    writer.add_tensor("a.conv1d.1.bias", zeros(n_embd, 1))
    writer.add_tensor("a.conv1d.2.weight", weight(n_embd, n_embd, 3, dtype=np.float16))
    writer.add_tensor("a.conv1d.2.bias", zeros(n_embd, 1))
    writer.add_tensor("a.position_embd.weight", weight(N_POSITIONS, n_embd))
    for layer in range(n_layer):
        prefix = f"a.blk.{layer}."
        for name in ("attn_q", "attn_v", "attn_out"):
            writer.add_tensor(prefix + name + ".weight", weight(n_embd, n_embd))
            writer.add_tensor(prefix + name + ".bias", zeros(n_embd))
        writer.add_tensor(prefix + "attn_k.weight", weight(n_embd, n_embd))  # Whisper: no bias for k
        for name in ("ln1", "ln2"):
            writer.add_tensor(prefix + name + ".weight", ones(n_embd))
            writer.add_tensor(prefix + name + ".bias", zeros(n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.bias", zeros(n_ff))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))
        writer.add_tensor(prefix + "ffn_down.bias", zeros(n_embd))
    writer.add_tensor("a.post_ln.weight", ones(n_embd))
    writer.add_tensor("a.post_ln.bias", zeros(n_embd))
    writer.add_tensor("mm.a.fc.weight", weight(text_n_embd, n_embd))
    writer.add_tensor("mm.a.fc.bias", zeros(text_n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def wav_clip(seconds: float = 1.0, *, frequency: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV file holding a sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * frequency * t) * 0.3 * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()
