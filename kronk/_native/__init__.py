"""The raw cffi binding: declarations (generated `_ffi.py`), loader, ABI checks, logging.

Only `kronk.llama` imports this package; everything above uses `kronk.llama`.
"""
