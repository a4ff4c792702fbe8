"""The low-level SDK: Pythonic owners of llama.cpp objects.

    from kronk.llama import Model, Context, Batch, SamplerChain
    model = Model.load("model.gguf")
    ctx = Context(model, n_ctx=2048)

Each class owns its C resource and frees it in `close()` (also `with` and GC).
"""

from kronk.llama.batch import Batch
from kronk.llama.context import Context, ContextParams, DecodeError, KVCacheFullError
from kronk.llama.model import Model, check_gguf_file, split_paths
from kronk.llama.mtmd import Chunks, MediaPrompt, Projector
from kronk.llama.sampler import SamplerChain, validate_grammar
from kronk.llama.system import Device, devices, supports_gpu_offload, system_info, versions
from kronk.llama.vocab import Utf8Stream, Vocab

__all__ = [
    "Batch",
    "Chunks",
    "MediaPrompt",
    "Context",
    "ContextParams",
    "DecodeError",
    "Device",
    "KVCacheFullError",
    "Model",
    "Projector",
    "SamplerChain",
    "Utf8Stream",
    "Vocab",
    "check_gguf_file",
    "devices",
    "split_paths",
    "supports_gpu_offload",
    "system_info",
    "validate_grammar",
    "versions",
]
