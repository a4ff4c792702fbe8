"""`Projector`: a multimodal projector (mmproj) for image and audio input via libmtmd.

A prompt with media markers is tokenized into chunks (text runs and media); the chunks
are then evaluated into one sequence of the context. libmtmd's helpers handle one
sequence per call and are not thread-safe: call them only from the engine thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kronk._native.loader import libraries
from kronk.errors import CapabilityError, InvalidRequestError, ModelLoadError, NativeError
from kronk.llama.context import Context
from kronk.llama.model import Model, check_gguf_file
from kronk.llama.owner import NativeOwner


class Chunks(NativeOwner):
    """Tokenized multimodal input (owned; freed on close)."""

    _what = "multimodal input"

    def __init__(self, libs: Any, handle: Any) -> None:
        self._libs = libs
        self._own(handle, libs.mtmd.mtmd_input_chunks_free)

    @property
    def n_tokens(self) -> int:
        return int(self._libs.mtmd.mtmd_helper_get_n_tokens(self._handle))

    @property
    def n_pos(self) -> int:
        return int(self._libs.mtmd.mtmd_helper_get_n_pos(self._handle))

    def __len__(self) -> int:
        return int(self._libs.mtmd.mtmd_input_chunks_size(self._handle))

    def kinds(self) -> list[str]:
        names = {0: "text", 1: "image", 2: "audio"}
        mtmd = self._libs.mtmd
        return [
            names.get(int(mtmd.mtmd_input_chunk_get_type(mtmd.mtmd_input_chunks_get(self._handle, i))), "?")
            for i in range(len(self))
        ]

    def token_ids(self, media_id: int = -1) -> list[int]:
        """Token ids in prompt order; each position of a media chunk is `media_id`."""
        ffi, mtmd = self._libs.ffi, self._libs.mtmd
        ids: list[int] = []
        count = ffi.new("size_t *")
        for i in range(len(self)):
            chunk = mtmd.mtmd_input_chunks_get(self._handle, i)
            if int(mtmd.mtmd_input_chunk_get_type(chunk)) == 0:
                tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, count)
                ids.extend(tokens[j] for j in range(count[0]))
            else:
                ids.extend([media_id] * int(mtmd.mtmd_input_chunk_get_n_tokens(chunk)))
        return ids


class Projector(NativeOwner):
    _what = "projector"

    def __init__(self, path: str | Path, model: Model, *, use_gpu: bool = True, n_threads: int = 0) -> None:
        import os

        self._libs = libraries()
        if self._libs.mtmd is None:
            raise NativeError("libmtmd is not installed with the llama.cpp libraries")
        path = Path(path).expanduser()
        check_gguf_file(path)
        ffi, mtmd = self._libs.ffi, self._libs.mtmd
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = n_threads or os.cpu_count() or 1
        params.warmup = False
        handle = mtmd.mtmd_init_from_file(str(path).encode(), model.handle, params)
        if handle == ffi.NULL:
            raise ModelLoadError(f"libmtmd could not load the projector {path} for this model")
        self._own(handle, mtmd.mtmd_free)
        self.model = model
        self.path = path

    @property
    def supports_vision(self) -> bool:
        return bool(self._libs.mtmd.mtmd_support_vision(self.handle))

    @property
    def supports_audio(self) -> bool:
        return bool(self._libs.mtmd.mtmd_support_audio(self.handle))

    @property
    def marker(self) -> str:
        return self._libs.ffi.string(self._libs.mtmd.mtmd_get_marker(self.handle)).decode()

    def tokenize(self, text: str, media: list[bytes], *, add_special: bool = True) -> Chunks:
        """Split `text` at each media marker and attach the decoded media (image or audio file bytes)."""
        ffi, mtmd = self._libs.ffi, self._libs.mtmd
        if text.count(self.marker) != len(media):
            raise InvalidRequestError(f"prompt has {text.count(self.marker)} media markers for {len(media)} media")
        bitmaps = []
        try:
            opt = mtmd.mtmd_helper_init_opt_default()
            for blob in media:
                wrapper = mtmd.mtmd_helper_bitmap_init_from_buf(self.handle, blob, len(blob), False, opt)
                if wrapper.bitmap == ffi.NULL:
                    raise InvalidRequestError("media could not be decoded (unsupported image/audio format)")
                is_audio = bool(mtmd.mtmd_bitmap_is_audio(wrapper.bitmap))
                bitmaps.append(wrapper.bitmap)
                if is_audio and not self.supports_audio:
                    raise CapabilityError("this model's projector does not accept audio")
                if not is_audio and not self.supports_vision:
                    raise CapabilityError("this model's projector does not accept images")
            encoded = text.encode()
            c_text = ffi.new("mtmd_input_text *")
            keep = ffi.new("char[]", encoded)
            c_text.text = keep
            c_text.text_len = len(encoded)
            c_text.add_special = add_special
            c_text.parse_special = True
            chunks = mtmd.mtmd_input_chunks_init()
            array = ffi.new("const mtmd_bitmap *[]", bitmaps) if bitmaps else ffi.NULL
            code = mtmd.mtmd_tokenize(self.handle, chunks, c_text, array, len(bitmaps))
            if code != 0:
                mtmd.mtmd_input_chunks_free(chunks)
                raise InvalidRequestError(f"multimodal tokenization failed (code {code})")
            return Chunks(self._libs, chunks)
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def evaluate(self, ctx: Context, chunks: Chunks, *, n_past: int, seq_id: int, logits_last: bool = True) -> int:
        """Decode all chunks into `seq_id` starting at `n_past`; returns the new n_past."""
        ffi = self._libs.ffi
        new_n_past = ffi.new("llama_pos *")
        code = self._libs.mtmd.mtmd_helper_eval_chunks(
            self.handle, ctx.handle, chunks.handle, n_past, seq_id, ctx.n_batch, logits_last, new_n_past
        )
        if code != 0:
            raise NativeError(f"multimodal evaluation failed (code {code})")
        return int(new_n_past[0])


class MediaPrompt:
    """A tokenized multimodal prompt bound to its projector: what the engine evaluates.

    The engine calls `evaluate` on its own thread (libmtmd is not thread-safe) and
    `close` once the chunks are in the KV cache.
    """

    def __init__(self, projector: Projector, chunks: Chunks) -> None:
        self.projector = projector
        self.chunks = chunks
        self.n_tokens = chunks.n_tokens
        self.n_pos = chunks.n_pos

    @classmethod
    def build(cls, projector: Projector, text: str, media: list[bytes]) -> MediaPrompt:
        """Tokenize `text` (with one projector marker per media item) and decode the media."""
        return cls(projector, projector.tokenize(text, media))

    def evaluate(self, ctx: Context, seq_id: int) -> int:
        """Decode every chunk into `seq_id` from position 0; returns the positions used."""
        return self.projector.evaluate(ctx, self.chunks, n_past=0, seq_id=seq_id)

    def close(self) -> None:
        self.chunks.close()
