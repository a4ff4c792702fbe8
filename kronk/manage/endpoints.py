"""Where model sources live, from the environment, so tests and mirrors can redirect them.

`KRONK_HF_ENDPOINT` (default https://huggingface.co), `KRONK_PYPI_URL` (default
https://pypi.org), `KRONK_CATALOG_URL` (where `kronk catalog update` fetches from) and
`KRONK_HF_TOKEN` (bearer token sent to the Hugging Face endpoint only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

import kronk

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_PYPI_URL = "https://pypi.org"
DEFAULT_CATALOG_URL = "https://raw.githubusercontent.com/kronk-py/kronk/main/catalog.yaml"
HF_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})


@dataclass(frozen=True, slots=True)
class Endpoints:
    hf: str = DEFAULT_HF_ENDPOINT
    pypi: str = DEFAULT_PYPI_URL
    catalog_url: str = DEFAULT_CATALOG_URL
    hf_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        env = os.environ if environ is None else environ
        return cls(
            hf=(env.get("KRONK_HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/"),
            pypi=(env.get("KRONK_PYPI_URL") or DEFAULT_PYPI_URL).rstrip("/"),
            catalog_url=env.get("KRONK_CATALOG_URL") or DEFAULT_CATALOG_URL,
            hf_token=env.get("KRONK_HF_TOKEN") or None,
        )

    def is_hf_host(self, url: str) -> bool:
        host = urlsplit(url).netloc.lower()
        return host in HF_HOSTS or host == urlsplit(self.hf).netloc.lower()

    def hf_headers(self) -> dict[str, str]:
        """The bearer token, for requests to the Hugging Face endpoint only (never to PyPI or plain URLs)."""
        return {"Authorization": f"Bearer {self.hf_token}"} if self.hf_token else {}


def make_session() -> requests.Session:
    """A requests session with Kronk's User-Agent; one per pull manager, used from worker threads."""
    session = requests.Session()
    session.headers["User-Agent"] = f"kronk/{getattr(kronk, '__version__', '0')} (+python-requests)"
    return session
