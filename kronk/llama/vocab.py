"""`Vocab`: tokenize, detokenize and token pieces, with exact UTF-8 handling.

Token pieces are bytes, not str: a multi-byte character may be split across tokens,
so text is decoded only by the caller's incremental decoder (see `Utf8Stream`).
The vocabulary is owned by its model; a Vocab never frees anything.
"""

from __future__ import annotations

import codecs
from typing import Any

import numpy as np

from kronk.errors import InvalidRequestError

_VOCAB_TYPES = {0: "none", 1: "spm", 2: "bpe", 3: "wpm", 4: "ugm", 5: "rwkv", 6: "plamo2", 7: "test"}


class Vocab:
    def __init__(self, libs: Any, handle: Any) -> None:
        self._ffi = libs.ffi
        self._lib = libs.llama
        self._handle = handle
        self.n_tokens: int = int(self._lib.llama_vocab_n_tokens(handle))
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._eog: np.ndarray | None = None

    @property
    def handle(self) -> Any:
        return self._handle

    @property
    def type_name(self) -> str:
        return _VOCAB_TYPES.get(int(self._lib.llama_vocab_type(self._handle)), "unknown")

    # --- special tokens (-1 when the model has none) ---------------------------

    def _token(self, name: str) -> int:
        return int(getattr(self._lib, f"llama_vocab_{name}")(self._handle))

    @property
    def bos(self) -> int:
        return self._token("bos")

    @property
    def eos(self) -> int:
        return self._token("eos")

    @property
    def eot(self) -> int:
        return self._token("eot")

    @property
    def sep(self) -> int:
        return self._token("sep")

    @property
    def nl(self) -> int:
        return self._token("nl")

    @property
    def pad(self) -> int:
        return self._token("pad")

    @property
    def fim_pre(self) -> int:
        return self._token("fim_pre")

    @property
    def fim_suf(self) -> int:
        return self._token("fim_suf")

    @property
    def fim_mid(self) -> int:
        return self._token("fim_mid")

    @property
    def fim_pad(self) -> int:
        return self._token("fim_pad")

    @property
    def fim_rep(self) -> int:
        return self._token("fim_rep")

    @property
    def fim_sep(self) -> int:
        return self._token("fim_sep")

    @property
    def supports_fim(self) -> bool:
        return self.fim_pre >= 0 and self.fim_suf >= 0 and self.fim_mid >= 0

    @property
    def add_bos(self) -> bool:
        return bool(self._lib.llama_vocab_get_add_bos(self._handle))

    @property
    def add_eos(self) -> bool:
        return bool(self._lib.llama_vocab_get_add_eos(self._handle))

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._handle, token))

    def is_control(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_control(self._handle, token))

    def eog_mask(self) -> np.ndarray:
        """Boolean array: which token ids end generation (computed once)."""
        if self._eog is None:
            self._eog = np.array([self.is_eog(t) for t in range(self.n_tokens)], dtype=bool)
        return self._eog

    def token_text(self, token: int) -> str:
        ptr = self._lib.llama_vocab_get_text(self._handle, token)
        return "" if ptr == self._ffi.NULL else self._ffi.string(ptr).decode("utf-8", "replace")

    # --- tokenize / detokenize -------------------------------------------------

    def tokenize(self, text: str | bytes, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Text -> token ids. `add_special` adds BOS/EOS as the model wants;
        `parse_special` turns special-token text (e.g. `<|im_start|>`) into those tokens."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if len(data) > 2**31 - 1:
            raise InvalidRequestError("text too long to tokenize")
        capacity = len(data) + 8
        buf = self._ffi.new("llama_token[]", capacity)
        n = self._lib.llama_tokenize(self._handle, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            if n == -(2**31):
                raise InvalidRequestError("tokenization overflow")
            capacity = -n
            buf = self._ffi.new("llama_token[]", capacity)
            n = self._lib.llama_tokenize(self._handle, data, len(data), buf, capacity, add_special, parse_special)
            if n < 0:
                raise InvalidRequestError("tokenization failed")
        return list(self._ffi.unpack(buf, n))

    def check_tokens(self, tokens: list[int]) -> None:
        """Raise InvalidRequestError for ids outside the vocabulary (llama.cpp would abort)."""
        for token in tokens:
            if not 0 <= token < self.n_tokens:
                raise InvalidRequestError(f"token id {token} is outside the vocabulary (0..{self.n_tokens - 1})")

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character). Cached."""
        key = (token, special)
        cached = self._pieces.get(key)
        if cached is not None:
            return cached
        buf = self._ffi.new("char[]", 64)
        n = self._lib.llama_token_to_piece(self._handle, token, buf, 64, 0, special)
        if n < 0:
            buf = self._ffi.new("char[]", -n)
            n = self._lib.llama_token_to_piece(self._handle, token, buf, -n, 0, special)
        piece = self._ffi.unpack(buf, max(n, 0))
        self._pieces[key] = piece
        return piece

    def detokenize(self, tokens: list[int], *, remove_special: bool = False, unparse_special: bool = False) -> str:
        """Token ids -> text, exactly as llama.cpp joins them (leading-space rules included)."""
        self.check_tokens(tokens)
        if not tokens:
            return ""
        arr = self._ffi.new("llama_token[]", tokens)
        capacity = max(64, len(tokens) * 8)
        buf = self._ffi.new("char[]", capacity)
        n = self._lib.llama_detokenize(self._handle, arr, len(tokens), buf, capacity, remove_special, unparse_special)
        if n < 0:
            capacity = -n
            buf = self._ffi.new("char[]", capacity)
            n = self._lib.llama_detokenize(
                self._handle, arr, len(tokens), buf, capacity, remove_special, unparse_special
            )
        return self._ffi.unpack(buf, max(n, 0)).decode("utf-8", "replace")


class Utf8Stream:
    """Turns token pieces into text without ever splitting a multi-byte character.

    Bytes of an incomplete character are held until the next piece completes it;
    invalid sequences become U+FFFD (as `bytes.decode(errors="replace")` would).
    """

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, piece: bytes) -> str:
        return self._decoder.decode(piece)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
