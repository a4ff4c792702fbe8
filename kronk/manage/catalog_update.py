"""`kronk catalog update`: fetch a newer catalog, validate it, store it atomically.

Nothing is written unless the fetched text parses as a valid catalog, so a failed
update leaves the current (or shipped) catalog in use.
"""

from __future__ import annotations

from pathlib import Path

import requests

from kronk.errors import DownloadError
from kronk.models.catalog import CATALOG_FILE, Catalog
from kronk.paths import atomic_write_text, catalog_dir

MAX_CATALOG_BYTES = 4 << 20


def update_catalog(url: str, session: requests.Session, *, folder: Path | None = None,
                   timeout: float = 30.0) -> Catalog:
    """Download the catalog at `url` into `folder` (default catalog_dir()); return the merged catalog."""
    folder = folder if folder is not None else catalog_dir()
    try:
        response = session.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch the catalog from {url}: {exc}") from exc
    if response.status_code != 200:
        raise DownloadError(f"cannot fetch the catalog from {url}: HTTP {response.status_code}")
    if len(response.content) > MAX_CATALOG_BYTES:
        raise DownloadError(f"the catalog at {url} is larger than {MAX_CATALOG_BYTES} bytes")
    text = response.content.decode("utf-8", errors="replace")
    Catalog.from_yaml(text, origin=url)  # raises StoreError before anything is written
    atomic_write_text(folder / CATALOG_FILE, text)
    return Catalog.load(override_dir=folder)
