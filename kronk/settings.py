"""The server's configuration: each option declared once, read from four sources.

Each option is a field of ServerSettings declared with `setting(...)` (its type, default,
parser, help and range in one place); OPTIONS is read from those fields. Every option
has a flag (`--ctx-size`) and an env var (`KRONK_CTX_SIZE`) with matching names, and may appear in the YAML config file (`ctx_size:` or `ctx-size:`).
Precedence, highest first: flag > env > config file > default. Model options
(slots, ctx size, threads, ...) default to "unset": only values the operator set
somewhere override what the catalog or the per-model config file says, so a
catalog entry's tuned context size is not clobbered by a global default.

The per-model config file (`--model-config` / `KRONK_MODEL_CONFIG`) maps a model id
to ModelSettings overrides; it is the most specific source for that model.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from kronk.durations import parse_duration  # the one duration grammar
from kronk.engine.speculation import DRAFT_MAX_LIMIT, SPEC_TYPES
from kronk.errors import ConfigError
from kronk.llama.rpc import parse_endpoints
from kronk.models.config_keys import LEGACY_NAMES
from kronk.sdk.settings import ModelSettings, PoolSettings

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"
"""The catalog's default chat model (alias `smollm2`), used when none is configured."""

SECURITY_MODES = ("off", "management", "full")
LOG_LEVELS = ("debug", "info", "warning", "error")
FLASH_ATTN = ("auto", "on", "off")
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(value: object) -> int:
    """Bytes from an int or a text like `32MiB`, `10mb`, `4096`."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 32MiB")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size like 32MiB, got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def parse_list(value: object) -> tuple[str, ...]:
    """A list from YAML, or a comma-separated text from a flag or env var."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def parse_str(value: object) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


class Check(NamedTuple):
    """A range rule of one option: `test(value)` must hold; `text` ends "must be ..."."""

    test: Callable[[Any], bool]
    text: str


def at_least(low: float, shown: str | None = None) -> Check:
    return Check(lambda value: value >= low, f"at least {shown or low}")


def above(low: float) -> Check:
    return Check(lambda value: value > low, f"more than {low}")


def between(low: float, high: float) -> Check:
    return Check(lambda value: low <= value <= high, f"between {low} and {high}")


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its name gives the flag, the env var and the config-file key.

    Options are not written by hand: each is a ServerSettings field declared with
    `setting(...)`, and OPTIONS is read from those fields, so a setting's name, type and
    default are declared once."""

    name: str
    parse: Callable[[object], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    per_model: bool = False
    """The option sets the ModelSettings field of the same name (and defaults to unset, so a
    model config file or catalog entry can set it per model)."""
    metavar: str = "VALUE"
    check: Check | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "KRONK_" + self.name.upper()

    def convert(self, value: object, source: str) -> Any:
        """Parse a raw value; a bad one is a ConfigError naming where it came from."""
        try:
            parsed = self.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if self.choices is not None and parsed not in self.choices:
            raise ConfigError(f"{source}: must be one of {', '.join(self.choices)}, got {parsed!r}")
        if self.check is not None and parsed is not None and not self.check.test(parsed):
            raise ConfigError(f"{source}: must be {self.check.text}, got {parsed!r}")
        return parsed


_OPTION = "kronk.option"
"""The field metadata key that holds an option's declaration."""


def setting(parse: Callable[[object], Any], default: Any, help: str, *, choices: tuple[str, ...] | None = None,
            per_model: bool = False, metavar: str = "VALUE", check: Check | None = None, repr: bool = True) -> Any:
    """A ServerSettings field that is also an option (flag, env var, config-file key).

    A per-model option defaults to unset (None), so only a value the operator gave
    overrides the catalog and the per-model config."""
    if per_model and default is not None:
        raise TypeError("a per-model option defaults to None")
    option = Option("", parse, default, help, choices, per_model, metavar, check)
    return field(default=default, repr=repr, metadata={_OPTION: option})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Resolved server configuration. `explicit` names the options some source set."""

    host: str = setting(parse_str, "127.0.0.1", "Address to listen on.", metavar="HOST")
    port: int = setting(parse_int, 11435, "Port to listen on.", metavar="PORT", check=between(0, 65535))
    model: str | None = setting(
        parse_str, None, f"Default model: catalog id, alias or GGUF path (default {DEFAULT_MODEL}).",
        metavar="MODEL")
    preload: bool = setting(
        parse_bool, True, "Load the default model at startup (readiness waits for it).",
        metavar="BOOL")
    slots: int | None = setting(
        parse_int, None, "Parallel sequences per model (continuous batching).", per_model=True,
        metavar="N", check=at_least(1))
    threads: int | None = setting(
        parse_int, None, "Decode threads per model (0: all cores).", per_model=True,
        metavar="N", check=at_least(0))
    ctx_size: int | None = setting(
        parse_int, None, "KV cells per model, shared by its slots (0: training context).",
        per_model=True, metavar="N", check=at_least(0))
    batch_size: int | None = setting(
        parse_int, None, "Logical batch size for prefill.", per_model=True,
        metavar="N", check=at_least(1))
    ubatch_size: int | None = setting(
        parse_int, None, "Physical batch size.", per_model=True, metavar="N", check=at_least(1))
    gpu_layers: int | None = setting(
        parse_int, None, "Layers to offload to the GPU (-1: all).", per_model=True,
        metavar="N")
    rpc: tuple[str, ...] | None = setting(
        parse_endpoints, None, "ggml RPC servers (host:port,...; `kronk rpc-server`) that take some of "
        "each model's layers; no authentication: loopback or a private network only (docs/rpc.md).",
        per_model=True, metavar="LIST")
    flash_attn: str | None = setting(
        parse_str, None, "Flash attention.", choices=FLASH_ATTN, per_model=True,
        metavar="MODE")
    cache_type_k: str | None = setting(
        parse_str, None, "KV cache type for K.", choices=CACHE_TYPES,
        per_model=True, metavar="TYPE")
    cache_type_v: str | None = setting(
        parse_str, None, "KV cache type for V.", choices=CACHE_TYPES,
        per_model=True, metavar="TYPE")
    deterministic: bool | None = setting(
        parse_bool, None, "Greedy output that repeats whatever else runs: batch-invariant "
        "CPU attention (flash attention on, V cache bf16); costs decode speed.", per_model=True,
        metavar="BOOL")
    queue_size: int | None = setting(
        parse_int, None, "Requests that may wait for a slot before 429.",
        per_model=True, metavar="N", check=at_least(0))
    spec_type: str | None = setting(
        parse_str, None, "Speculative decoding: off, ngram (prompt lookup) or draft (a draft "
        "model); output is unchanged, repeat-heavy replies come faster (docs/server.md).", choices=SPEC_TYPES,
        per_model=True, metavar="TYPE")
    spec_draft_max: int | None = setting(
        parse_int, None, "The most draft tokens a slot verifies per step.", per_model=True,
        metavar="N", check=between(0, DRAFT_MAX_LIMIT))
    spec_draft_min: int | None = setting(
        parse_int, None, "Shorter drafts are not verified.", per_model=True, metavar="N", check=at_least(1))
    draft_model: str | None = setting(
        parse_str, None, "Draft model for spec_type draft: a catalog id, alias or GGUF path "
        "with the target's vocabulary.", per_model=True, metavar="MODEL")
    model_paths: bool = setting(
        parse_bool, False, "Let requests name GGUF files by path (off: only store ids and "
        "aliases, the default model and the model config file's entries).", metavar="BOOL")
    max_models: int = setting(parse_int, 3, "Models kept in memory at once.", metavar="N", check=at_least(1))
    model_ttl: float = setting(
        parse_duration, 300.0, "Unload a model idle this long (0: never); e.g. 300, 5m.",
        metavar="DURATION", check=at_least(0))
    max_body_size: int = setting(
        parse_size, 32 * 1024**2, "Largest request body; e.g. 32MiB.", metavar="SIZE", check=at_least(1024, "1KiB"))
    max_tokens_default: int | None = setting(
        parse_int, None, "Output cap for requests that set no max_tokens (built-in "
        "default 4096; 0: until the context is full).", per_model=True, metavar="N", check=at_least(0))
    max_tokens_limit: int = setting(
        parse_int, 32768, "Largest max_tokens a request may ask for.", metavar="N", check=at_least(1))
    max_inputs: int = setting(
        parse_int, 2048, "Most inputs in one embeddings/rerank/completions request.",
        metavar="N", check=at_least(1))
    keepalive: float = setting(
        parse_duration, 15.0, "Seconds between SSE keep-alive comments.", metavar="DURATION", check=above(0))
    security: str = setting(
        parse_str, "off", "Who must present a token: off, management (admin routes) or full.",
        choices=SECURITY_MODES, metavar="MODE")
    log_level: str = setting(parse_str, "info", "Log level.", choices=LOG_LEVELS, metavar="LEVEL")
    ui: bool = setting(parse_bool, True, "Serve the browser UI at / (--no-ui: the API only).")
    mcp_config: str | None = setting(
        parse_str, None, 'MCP servers file ({"mcpServers": {name: {command, args, env} | '
        '{url, headers}}}) whose tools the server offers (docs/tools.md).', metavar="PATH")
    tools_allow: tuple[str, ...] = setting(
        parse_list, (), "Hosts and CIDRs server-side tools may reach although they are "
        "loopback/private/link-local (comma list; the SSRF guard refuses them otherwise).", metavar="LIST")
    searxng_url: str | None = setting(
        parse_str, None, "SearXNG search endpoint for the web_search tool "
        "(e.g. http://127.0.0.1:8888/search).", metavar="URL")
    brave_api_key: str | None = setting(
        parse_str, None, "Brave Search API key for the web_search tool (prefer the env var).",
        metavar="KEY", repr=False)
    tool_timeout: float = setting(
        parse_duration, 30.0, "Time limit of one server-side tool call; e.g. 30, 2m.",
        metavar="DURATION", check=above(0))
    tool_max_output: int = setting(
        parse_size, 100_000, "Characters of tool output kept before it enters a prompt.",
        metavar="SIZE", check=at_least(1024, "1KiB"))
    web_fetch_max_bytes: int = setting(
        parse_size, 5 * 1024**2, "Bytes web_fetch reads from a page at most.",
        metavar="SIZE", check=at_least(1024, "1KiB"))
    agent_max_iterations: int = setting(
        parse_int, 8, "Model turns that call server-side tools, at most, in one request "
        "(the agent loop then ends with the last turn).", metavar="N", check=at_least(1))
    agent_max_time: float = setting(
        parse_duration, 120.0, "Time one request's server-side tool loop may take; e.g. 120, "
        "5m.", metavar="DURATION", check=above(0))
    config_file: Path | None = None
    model_config_file: Path | None = None
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Model id -> ModelSettings overrides from the model config file."""
    explicit: frozenset[str] = frozenset()

    @property
    def default_model(self) -> str:
        return self.model or DEFAULT_MODEL

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def model_overrides(self) -> dict[str, Any]:
        """ModelSettings fields the operator set (flag, env or config file)."""
        out: dict[str, Any] = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.per_model and value is not None:
                out[option.name] = value
        return out

    def pool_settings(self) -> PoolSettings:
        """The SDK pool configuration.

        Explicit model options become the pool's `overrides` (above the catalog's
        config for a model); the model config file's entries stay above those.
        """
        overrides = self.model_overrides()
        return PoolSettings(
            default_model=self.default_model,
            max_models=self.max_models,
            ttl_seconds=self.model_ttl,
            overrides=overrides,
            per_model={model_id: dict(cfg) for model_id, cfg in self.per_model.items()},
            model_paths=self.model_paths,
        )

    def validate(self) -> None:
        """Each option's range (load_settings already checked the values it read, naming their
        source; this covers settings built in code) and the rules that involve two settings."""
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.check is not None and value is not None and not option.check.test(value):
                raise ConfigError(f"{option.name} must be {option.check.text}, got {value!r}")
        if self.deterministic and self.flash_attn == "off":
            raise ConfigError("deterministic needs flash attention (auto or on), not flash_attn off")


OPTIONS: tuple[Option, ...] = tuple(
    dataclasses.replace(f.metadata[_OPTION], name=f.name)
    for f in dataclasses.fields(ServerSettings) if _OPTION in f.metadata
)
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
CONFIG_ENV = "KRONK_CONFIG"
MODEL_CONFIG_ENV = "KRONK_MODEL_CONFIG"


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping of setting names to values")
    return data


def _normalise_key(key: object) -> str:
    return str(key).strip().replace("-", "_").lower()


def read_config_file(path: Path) -> dict[str, Any]:
    """Options from the YAML config file; unknown keys are an error (typos must not pass)."""
    raw = _read_yaml(path, "config file")
    out: dict[str, Any] = {}
    allowed = set(OPTIONS_BY_NAME) | {"model_config"}
    for key, value in raw.items():
        name = _normalise_key(key)
        if name not in allowed:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        out[name] = value
    return out


_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelSettings)}
_PER_MODEL = {o.name for o in OPTIONS if o.per_model}
assert _PER_MODEL <= _MODEL_FIELDS, f"per-model options without a ModelSettings field: {_PER_MODEL - _MODEL_FIELDS}"


def read_model_config(path: Path) -> dict[str, dict[str, Any]]:
    """Model id -> ModelSettings overrides. Accepts `{models: {...}}` or a bare mapping.

    Keys are the setting names (`ctx_size`, also written `ctx-size`); the old spellings
    `context_size` and `flash_attention` are still read.
    """
    raw = _read_yaml(path, "model config file")
    models = raw.get("models", raw) if isinstance(raw.get("models"), dict) else raw
    out: dict[str, dict[str, Any]] = {}
    for model_id, cfg in models.items():
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"model config file {path}: entry {model_id!r} must be a mapping")
        entry: dict[str, Any] = {}
        for key, value in cfg.items():
            name = _normalise_key(key)
            name = LEGACY_NAMES.get(name, name)
            if name not in _MODEL_FIELDS:
                raise ConfigError(f"model config file {path}: {model_id}: unknown setting {key!r}")
            entry[name] = value
        out[str(model_id)] = entry
    return out


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Resolve every option from flags > env > config file > defaults.

    `flags` holds only values given on the command line (None means not given);
    `config` and `model_config` keys name the two files.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if environ is None else environ

    config_path = flags.get("config") or env.get(CONFIG_ENV) or None
    file_values: dict[str, Any] = {}
    if config_path:
        config_path = Path(str(config_path)).expanduser()
        file_values = read_config_file(config_path)

    values: dict[str, Any] = {}
    explicit: set[str] = set()
    for option in OPTIONS:
        if option.name in flags:
            values[option.name] = option.convert(flags[option.name], option.flag)
        elif env.get(option.env, "") != "":
            values[option.name] = option.convert(env[option.env], option.env)
        elif option.name in file_values:
            values[option.name] = option.convert(file_values[option.name], f"{config_path}: {option.name}")
        else:
            continue
        explicit.add(option.name)

    model_config_path = flags.get("model_config") or env.get(MODEL_CONFIG_ENV) or file_values.get("model_config")
    per_model: dict[str, dict[str, Any]] = {}
    if model_config_path:
        model_config_path = Path(str(model_config_path)).expanduser()
        per_model = read_model_config(model_config_path)

    settings = ServerSettings(
        **values,
        config_file=Path(config_path) if config_path else None,
        model_config_file=Path(model_config_path) if model_config_path else None,
        per_model=per_model,
        explicit=frozenset(explicit),
    )
    settings.validate()
    return settings
