"""`Model`: a loaded GGUF model (weights + vocabulary), with its metadata.

The model owns its C pointer and frees it in `close()` (idempotent; also on `with` exit
and, as a last resort, on garbage collection). Contexts made from a model keep it alive.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from kronk._native.loader import libraries
from kronk.errors import KronkError, ModelLoadError
from kronk.llama import rpc as rpc_backend
from kronk.llama.owner import NativeOwner
from kronk.llama.vocab import Vocab

logger = logging.getLogger("kronk.llama")

GGUF_MAGIC = b"GGUF"
_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def check_gguf_file(path: Path) -> None:
    """Fail early, with a clear message, on a missing or non-GGUF file (llama.cpp would only log)."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (magic {magic!r})")


def split_paths(path: Path) -> list[Path]:
    """All shards of a split model given any shard (`name-00001-of-00003.gguf`), else [path]."""
    match = _SPLIT_RE.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    return [path.with_name(f"{match['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


class Model(NativeOwner):
    """A loaded model. Use `Model.load(path, ...)`."""

    _what = "model"

    def _closed_error(self) -> KronkError:
        return ModelLoadError("model is closed")

    rpc: tuple[str, ...] = ()
    """The RPC servers holding some of the layers (kronk.llama.rpc), empty for a local model."""
    rpc_failure: str | None = None
    """Why a connection to one of `rpc` broke; the model is then unusable and never freed."""
    _rpc_watch: int | None = None

    def __init__(self, handle: Any, path: Path, rpc: tuple[str, ...] = ()) -> None:
        self._libs = libraries()
        self._own(handle, self._libs.llama.llama_model_free)
        self.path = path
        self.vocab = Vocab(self._libs, self._libs.llama.llama_model_get_vocab(handle))
        self.rpc = rpc
        if rpc:
            rpc_backend.hold(rpc)
            self._rpc_watch = rpc_backend.watch(rpc, self._on_rpc_failure)

    def _on_rpc_failure(self, reason: str) -> None:
        self.rpc_failure = reason

    def close(self) -> None:
        """Free the model. One whose RPC connection broke is abandoned instead: freeing it would
        talk to the dead server through ggml-rpc's parked thread and wait forever."""
        watch, self._rpc_watch = self._rpc_watch, None
        if watch is not None:
            rpc_backend.unwatch(watch)
        if self.rpc_failure is not None:
            self._handle = None
            return
        super().close()
        if watch is not None:
            rpc_backend.release(self.rpc)  # after the free: ggml's connections close with the model's buffers

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        gpu_layers: int = -1,
        mmap: bool = True,
        mlock: bool = False,
        vocab_only: bool = False,
        check_tensors: bool = False,
        main_gpu: int = 0,
        progress: Callable[[float], bool | None] | None = None,
        rpc: Sequence[str] = (),
    ) -> Model:
        """Load a GGUF model (any shard of a split model loads all shards).

        `progress(fraction)` may return False to abort the load. `rpc` lists `host:port`
        endpoints of ggml RPC servers (`kronk rpc-server`) that take layers beside the local
        device; with `gpu_layers=-1` on a CPU-only host the local CPU keeps an equal share
        (see docs/rpc.md). RPCUnavailableError (503) when a server is unreachable or fails.
        """
        path = Path(path).expanduser()
        shards = split_paths(path)
        for shard in shards:
            check_gguf_file(shard)
        libs = libraries()
        ffi, lib = libs.ffi, libs.llama
        params = lib.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.main_gpu = main_gpu
        params.vocab_only = vocab_only
        params.check_tensors = check_tensors
        if mmap and mlock:
            params.load_mode = lib.LLAMA_LOAD_MODE_MMAP_MLOCK
        elif mlock:
            params.load_mode = lib.LLAMA_LOAD_MODE_MLOCK
        elif mmap:
            params.load_mode = lib.LLAMA_LOAD_MODE_MMAP
        else:
            params.load_mode = lib.LLAMA_LOAD_MODE_NONE
        callback = None
        if progress is not None:

            @ffi.callback("bool(float, void *)")
            def callback(fraction: float, user_data: Any) -> bool:
                del user_data
                try:
                    return progress(fraction) is not False
                except Exception:  # an exception must not cross the C boundary
                    logger.exception("model load progress callback failed")
                    return False

            params.progress_callback = callback
        c_paths = [ffi.new("char[]", str(p).encode()) for p in shards]

        def load() -> Any:
            if len(c_paths) == 1:
                return lib.llama_model_load_from_file(c_paths[0], params)
            return lib.llama_model_load_from_splits(ffi.new("const char *[]", c_paths), len(c_paths), params)

        endpoints = tuple(rpc)
        if endpoints and not vocab_only:
            rpc_backend.check_endpoints(endpoints)
            devices = rpc_backend.run_guarded(endpoints, lambda: rpc_backend.rpc_devices(endpoints))
            local = rpc_backend.local_offload_devices()
            if gpu_layers < 0 and not local:
                n_layer = cls._layer_count(path)
                params.n_gpu_layers = rpc_backend.offloaded_layers(n_layer, len(devices))
            device_list = ffi.new("ggml_backend_dev_t[]", [*devices, *local, ffi.NULL])
            params.devices = device_list
            logger.info("loading %s over RPC %s: %d of its layers (+output) on %d remote device(s)",
                        path.name, ", ".join(endpoints), params.n_gpu_layers, len(devices))
            handle = rpc_backend.run_guarded(endpoints, load)
        else:
            endpoints = ()
            handle = load()
        if handle == ffi.NULL:
            raise ModelLoadError(f"llama.cpp could not load {path} (see the llama.cpp log for the reason)")
        return cls(handle, path, endpoints)

    @classmethod
    def _layer_count(cls, path: Path) -> int:
        """The model's repeating layers, from a vocab-only load: it reads the metadata but no
        weights (nor hparams: n_layer() is 0 then, so `<arch>.block_count` is read instead)."""
        with cls.load(path, vocab_only=True) as probe:
            value = probe.meta(f"{probe.architecture}.block_count")
        try:
            return int(value or 0)
        except ValueError:
            raise ModelLoadError(f"{path}: block_count {value!r} is not a number") from None

    # --- lifecycle --------------------------------------------------------------


    # --- information ------------------------------------------------------------

    def _string(self, func: Callable[..., int], *args: Any) -> str | None:
        ffi = self._libs.ffi
        size = 256
        while True:
            buf = ffi.new("char[]", size)
            n = func(self.handle, *args, buf, size)
            if n < 0:
                return None
            if n < size:
                return ffi.string(buf, n).decode("utf-8", "replace")
            size = n + 1

    @cached_property
    def metadata(self) -> dict[str, str]:
        """All GGUF metadata key/values as strings (arrays are summarised by llama.cpp)."""
        lib = self._libs.llama
        out: dict[str, str] = {}
        for i in range(lib.llama_model_meta_count(self.handle)):
            key = self._string(lib.llama_model_meta_key_by_index, i)
            value = self._string(lib.llama_model_meta_val_str_by_index, i)
            if key is not None and value is not None:
                out[key] = value
        return out

    def meta(self, key: str) -> str | None:
        return self._string(self._libs.llama.llama_model_meta_val_str, key.encode())

    def chat_template(self, name: str | None = None) -> str | None:
        """The Jinja chat template from the GGUF (a named one, e.g. "tool_use", if given)."""
        ffi = self._libs.ffi
        ptr = self._libs.llama.llama_model_chat_template(self.handle, name.encode() if name else ffi.NULL)
        return None if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "replace")

    @property
    def description(self) -> str:
        return self._string(self._libs.llama.llama_model_desc) or ""

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or ""

    @property
    def name(self) -> str:
        return self.meta("general.name") or self.path.stem

    @property
    def size_bytes(self) -> int:
        return int(self._libs.llama.llama_model_size(self.handle))

    @property
    def n_params(self) -> int:
        return int(self._libs.llama.llama_model_n_params(self.handle))

    @property
    def n_ctx_train(self) -> int:
        return int(self._libs.llama.llama_model_n_ctx_train(self.handle))

    @property
    def n_embd(self) -> int:
        return int(self._libs.llama.llama_model_n_embd(self.handle))

    @property
    def n_embd_out(self) -> int:
        return int(self._libs.llama.llama_model_n_embd_out(self.handle))

    @property
    def n_layer(self) -> int:
        return int(self._libs.llama.llama_model_n_layer(self.handle))

    @property
    def n_head(self) -> int:
        return int(self._libs.llama.llama_model_n_head(self.handle))

    @property
    def n_head_kv(self) -> int:
        return int(self._libs.llama.llama_model_n_head_kv(self.handle))

    @property
    def n_cls_out(self) -> int:
        return int(self._libs.llama.llama_model_n_cls_out(self.handle))

    @property
    def ftype_name(self) -> str:
        lib, ffi = self._libs.llama, self._libs.ffi
        ptr = lib.llama_ftype_name(lib.llama_model_ftype(self.handle))
        return ffi.string(ptr).decode() if ptr != ffi.NULL else "unknown"

    @property
    def has_encoder(self) -> bool:
        return bool(self._libs.llama.llama_model_has_encoder(self.handle))

    @property
    def has_decoder(self) -> bool:
        return bool(self._libs.llama.llama_model_has_decoder(self.handle))

    @property
    def is_recurrent(self) -> bool:
        return bool(self._libs.llama.llama_model_is_recurrent(self.handle)) or bool(
            self._libs.llama.llama_model_is_hybrid(self.handle)
        )

    @property
    def pooling_type(self) -> int:
        """The pooling the GGUF asks for (-1 when unset), from `<arch>.pooling_type`."""
        value = self.meta(f"{self.architecture}.pooling_type")
        try:
            return int(value) if value is not None else -1
        except ValueError:
            return -1

    @property
    def is_embedding_model(self) -> bool:
        """True for encoder-only models or models whose metadata asks for pooling."""
        return (self.has_encoder and not self.has_decoder) or self.pooling_type > 0

    @property
    def is_rerank_model(self) -> bool:
        return self.pooling_type == 4

    def info(self) -> dict[str, Any]:
        """A summary used by `kronk model show` and the API."""
        vocab = self.vocab
        return {
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "description": self.description,
            "size_bytes": self.size_bytes,
            "n_params": self.n_params,
            "quantization": self.ftype_name,
            "context_length": self.n_ctx_train,
            "embedding_length": self.n_embd,
            "layers": self.n_layer,
            "heads": self.n_head,
            "heads_kv": self.n_head_kv,
            "vocab_size": vocab.n_tokens,
            "vocab_type": vocab.type_name,
            "chat_template": self.chat_template() is not None,
            "fim": vocab.supports_fim,
            "embedding": self.is_embedding_model,
            "rerank": self.is_rerank_model,
        }
