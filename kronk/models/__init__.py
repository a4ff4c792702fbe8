"""Model files on disk: the store (ids, aliases, files, index), the catalog, GGUF metadata.

Below the SDK, which resolves model names through the store and checks what a model
can do from its metadata before loading it; `kronk.manage` (pulls, the management API)
builds on it.
"""
