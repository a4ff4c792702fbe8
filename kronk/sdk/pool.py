"""The model pool: load models on demand, keep at most N, unload idle ones after a TTL.

Concurrent requests for a model that is loading wait for the same load (coalesced).
A model with active streams is never unloaded: eviction picks idle models only, and
an explicit unload waits for its streams to end. Closing the pool ends open streams
(finish reason "cancelled") but frees no model while a request still holds it. Loading
and freeing run in worker threads so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kronk.engine.loop import Engine, EngineConfig
from kronk.engine.rpc import RPCEngine
from kronk.engine.types import SpecSettings
from kronk.errors import BusyError, ModelNotFoundError, ShuttingDownError
from kronk.llama.context import ContextParams
from kronk.llama.rpc import parse_endpoints
from kronk.sdk.requests import LoadedModelStatus
from kronk.sdk.settings import ModelSettings, PoolSettings

logger = logging.getLogger("kronk.pool")

T = TypeVar("T")

FREE_GRACE_SECONDS = 10.0
"""How long unloading a model that requests still hold (closing the pool) waits for them to
let go before leaving the model to be freed by the last of them."""


class CapabilityFlags(Protocol):
    """What a model can serve, as its metadata says (kronk.models.capabilities.Capabilities)."""

    chat: bool
    completion: bool
    embedding: bool
    rerank: bool
    vision: bool
    audio: bool


class Resolved(Protocol):
    """What a resolver returns (kronk.models.store.ResolvedModel satisfies it).

    `capabilities` (None when the resolver did not read the model's metadata) lets a
    request the model cannot serve fail before the pool loads it; read it with
    `getattr(resolved, "capabilities", None)`, since a resolver may leave it out."""

    id: str
    path: Path
    projector: Path | None
    config: dict[str, Any]


Resolver = Callable[[str], Resolved]

Admit = Callable[[Resolved, ModelSettings], None]
"""Asked with a model's resolution and settings before the pool loads it; raises to refuse."""


@dataclass(slots=True)
class PathResolution:
    id: str
    path: Path
    projector: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    capabilities: CapabilityFlags | None = None


def path_resolver(model: str) -> PathResolution:
    """Resolve a GGUF path (the id is the path as given)."""
    try:
        path = Path(model).expanduser()
        found = path.suffix == ".gguf" and path.exists()
    except (RuntimeError, ValueError, OSError):  # "~nobody", a NUL byte, a name too long: no such file
        found = False
    if found:
        return PathResolution(id=model, path=path)
    raise ModelNotFoundError(model)


def names_a_file(model: str) -> bool:
    """A model name that reads as a file path rather than a store id or alias."""
    return model.endswith(".gguf") or model.startswith(("/", "~", ".")) or "\\" in model


def paths_refused(resolver: Resolver, *, allowed: set[str]) -> Resolver:
    """`resolver`, except that names reading as file paths (other than `allowed`) are not found.

    The answer is the same whether or not such a file exists, so a client learns nothing
    about the server's files."""
    def resolve(model: str) -> Resolved:
        if names_a_file(model) and model not in allowed:
            raise ModelNotFoundError(model, f"model {model!r} not found: requests may name models by id or "
                                            "alias only (model files by path are turned off on this server)")
        return resolver(model)

    return resolve


def default_resolver() -> Resolver:
    """The model store's resolver (ids, aliases, paths), or paths only if it is unavailable."""
    try:
        from kronk.models.store import ModelStore
    except ImportError:  # pragma: no cover - the store ships with kronk
        return path_resolver
    store = ModelStore()

    def resolve(model: str) -> Resolved:
        try:
            return store.resolve(model)
        except ModelNotFoundError as exc:
            try:
                return path_resolver(model)
            except ModelNotFoundError:
                raise exc from None  # the store's message says how to get the model

    return resolve


class LoadedModel:
    """A model in memory with its engine. `active` counts requests using it right now."""

    def __init__(self, model_id: str, resolved: Resolved, model: Any, engine: Engine, settings: ModelSettings,
                 kind: str, projector: Any | None) -> None:
        self.id = model_id
        self.resolved = resolved
        self.model = model
        self.engine = engine
        self.settings = settings
        self.kind = kind
        self.projector = projector
        self.template: str | None = settings.template or model.chat_template()
        self._compiled: Any = None
        self.loaded_at = time.time()
        self.last_used = time.monotonic()
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._free_when_idle = False

    def chat_template(self, bos_token: str, eos_token: str) -> Any:
        """The model's template compiled once (jinja compilation costs milliseconds per request)."""
        if self._compiled is None and self.template is not None:
            from kronk.chat.template import ChatTemplate

            self._compiled = ChatTemplate(self.template, bos_token=bos_token, eos_token=eos_token)
        return self._compiled

    def enter(self) -> None:
        self.active += 1
        self.idle.clear()
        self.last_used = time.monotonic()

    def leave(self) -> None:
        self.active -= 1
        self.last_used = time.monotonic()
        if self.active == 0:
            self.idle.set()
            if self._free_when_idle:
                self.close()

    async def to_thread(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`asyncio.to_thread` for work that uses the model's native handles (tokenizing,
        templates, media prompts): the model stays held until the thread returns, even when
        the caller is cancelled (a client that disconnects) and stops waiting, so an unload
        or close never frees it under the thread."""
        loop = asyncio.get_running_loop()
        lock = threading.Lock()
        state = "queued"

        def call() -> T:
            nonlocal state
            with lock:
                if state == "abandoned":  # cancelled before a worker picked it up
                    raise asyncio.CancelledError()
                state = "running"
            try:
                return fn(*args)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits to free it
                    loop.call_soon_threadsafe(self.leave)

        self.enter()
        try:
            return await asyncio.to_thread(call)
        except asyncio.CancelledError:
            with lock:
                queued, state = state == "queued", "abandoned" if state == "queued" else state
            if queued:
                self.leave()
            raise

    async def until_idle(self) -> None:
        while self.active:  # a request may enter between idle being set and this waking
            await self.idle.wait()

    def free_when_idle(self) -> None:
        """An unloaded model still held by requests: the last one to leave frees it."""
        self._free_when_idle = True

    def close(self) -> None:
        """Blocking: stop the engine, free the projector and the model."""
        self.engine.close()
        draft = self.engine.config.draft_model
        if draft is not None:
            draft.close()
        if self.projector is not None:
            self.projector.close()
        self.model.close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a load's outcome as seen: its waiters, if any are left, re-raise it themselves."""
    if not task.cancelled():
        task.exception()


def _model_kind(model: Any) -> str:
    if model.is_rerank_model:
        return "rerank"
    if model.is_embedding_model:
        return "embedding"
    return "chat"


def expected_kind(resolved: Resolved, settings: ModelSettings) -> str | None:
    """The kind `_load_blocking` will give the model, judged from the resolver's metadata
    before loading; None when the metadata is missing or allows more than one kind (a
    catalog may add flags to what the GGUF says), so only the loaded model can tell."""
    caps = getattr(resolved, "capabilities", None)
    if caps is None:
        return None
    kinds = set()
    if getattr(caps, "rerank", False):
        kinds.add("rerank")
    if getattr(caps, "embedding", False):
        kinds.add("embedding")
    if getattr(caps, "completion", False) or getattr(caps, "chat", False):
        kinds.add("embedding" if settings.embeddings is True else "chat")
    return kinds.pop() if len(kinds) == 1 else None


def _load_blocking(model_id: str, resolved: Resolved, settings: ModelSettings,
                   draft_path: Path | None = None) -> LoadedModel:
    from kronk.llama import Model, Projector

    model = Model.load(resolved.path, gpu_layers=settings.gpu_layers, mmap=settings.mmap, mlock=settings.mlock,
                       rpc=parse_endpoints(settings.rpc))
    draft = None
    try:
        if draft_path is not None:  # spec_type draft: the engine checks its vocabulary
            draft = Model.load(draft_path, gpu_layers=settings.gpu_layers, mmap=settings.mmap)
        kind = _model_kind(model)
        if settings.embeddings is True and kind == "chat":
            kind = "embedding"
        embeddings = kind != "chat"
        n_ctx = settings.ctx_size or model.n_ctx_train
        if embeddings:
            n_ctx = min(n_ctx, model.n_ctx_train) if model.n_ctx_train > 0 else n_ctx
        config = EngineConfig(
            context=ContextParams(
                n_ctx=n_ctx,
                n_seq_max=max(1, settings.slots),
                n_batch=max(settings.batch_size, n_ctx) if embeddings else settings.batch_size,
                n_ubatch=settings.ubatch_size,
                n_threads=settings.effective_threads(),
                n_threads_batch=settings.effective_threads_batch(),
                flash_attn=settings.flash_attn,
                cache_type_k=settings.cache_type_k,
                cache_type_v=settings.cache_type_v,
                embeddings=embeddings,
                pooling=_pooling_for(kind, model.pooling_type),
            ),
            deterministic=settings.deterministic,
            speculation=SpecSettings(settings.spec_type if not embeddings else "off",
                                     settings.spec_draft_max, settings.spec_draft_min),
            draft_model=draft if not embeddings else None,
            queue_size=settings.queue_size,
            prompt_cache_bytes=settings.prompt_cache_mb * 1024 * 1024,
        )
        engine = (RPCEngine if model.rpc else Engine)(model, config)
        projector = None
        try:
            if resolved.projector is not None:
                projector = Projector(resolved.projector, model, use_gpu=settings.gpu_layers != 0)
        except BaseException:
            engine.close()
            raise
        return LoadedModel(model_id, resolved, model, engine, settings, kind, projector)
    except BaseException:
        if draft is not None:
            draft.close()
        model.close()
        raise


def _pooling_for(kind: str, model_pooling: int) -> str:
    """Rerank pools by rank; embedding models keep their own pooling (mean when they name
    none); chat models generate, so they get none (a pooling type makes llama.cpp warn)."""
    if kind == "rerank":
        return "rank"
    if kind == "embedding":
        return "unspecified" if model_pooling > 0 else "mean"
    return "unspecified"


class ModelPool:
    def __init__(self, settings: PoolSettings | None = None, resolver: Resolver | None = None) -> None:
        self.settings = settings or PoolSettings()
        self._resolver = resolver or default_resolver()
        if not self.settings.model_paths:
            # draft models the operator configured may be paths too
            drafts = [cfg.get("draft_model") for cfg in (self.settings.overrides, *self.settings.per_model.values())]
            operator_chosen = {self.settings.default_model or "", *self.settings.per_model,
                               *(str(d) for d in drafts if d)}
            self._resolver = paths_refused(self._resolver, allowed=operator_chosen)
        self._loaded: dict[str, LoadedModel] = {}
        self._names: dict[str, str] = {}
        """Requested name (id, alias, path) -> model id, for models that are loaded."""
        self._loading: dict[str, asyncio.Task[LoadedModel]] = {}
        self._load_lock = asyncio.Lock()
        self._claims: dict[str, int] = {}
        """Model id -> callers waiting for its load to finish."""
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        if self._reaper is None and self.settings.ttl_seconds > 0:
            self._reaper = asyncio.create_task(self._reap_idle(), name="kronk-pool-reaper")

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for model_id in list(self._loaded):
            await self._unload(model_id, wait=False)

    # --- resolving and loading ----------------------------------------------------

    def resolve(self, model: str | None) -> Resolved:
        name = model or self.settings.default_model
        if not name:
            raise ModelNotFoundError("", "no model given and no default model configured")
        return self._resolver(name)

    def loaded(self, model_id: str) -> LoadedModel | None:
        return self._loaded.get(model_id)

    async def get(self, model: str | None, admit: Admit | None = None) -> LoadedModel:
        """The loaded model (loading it first, once, however many callers ask at once).

        `admit` is asked before a model that is not loaded yet is loaded (or another is
        evicted for it): a request it refuses costs no load. A loaded model is not asked
        again; the caller checks it, and knows more from it than from metadata."""
        if self._closed:
            raise ShuttingDownError("the model pool is closed (shutting down)")
        name = model or self.settings.default_model or ""
        known = self._loaded.get(self._names.get(name, ""))
        if known is not None:  # the hot path: no resolving, no thread hop
            known.last_used = time.monotonic()
            return known
        resolved = await asyncio.to_thread(self.resolve, model)
        model_id = resolved.id
        if admit is not None and model_id not in self._loaded:
            admit(resolved, self.settings.settings_for(model_id, resolved.config))
        while True:
            if self._closed:
                raise ShuttingDownError("the model pool is closed (shutting down)")
            current = self._loaded.get(model_id)
            if current is not None:
                self._names[name] = model_id
                current.last_used = time.monotonic()
                return current
            pending = self._loading.get(model_id)
            if pending is None:
                # A task of its own, so a caller that gives up (a client that disconnects)
                # neither cancels the load halfway nor orphans the model it loads.
                pending = asyncio.create_task(self._load(name, resolved), name=f"kronk-load-{model_id}")
                pending.add_done_callback(_retrieve)
                self._loading[model_id] = pending
            # Claimed until this caller has it: a fresh model is not evicted before its
            # callers wake up (otherwise two loads could evict each other's model forever).
            self._claims[model_id] = self._claims.get(model_id, 0) + 1
            try:
                await asyncio.shield(pending)
            finally:
                self._claims[model_id] -= 1
                if not self._claims[model_id]:
                    del self._claims[model_id]
            # Loop: a caller woken after the model was unloaded again (explicitly) loads it anew.

    async def _load(self, name: str, resolved: Resolved) -> LoadedModel:
        model_id = resolved.id
        try:
            # One load at a time: otherwise two loads of different models would each see
            # room for one more model and together exceed max_models.
            async with self._load_lock:
                if self._closed:
                    raise ShuttingDownError("the model pool is closed (shutting down)")
                await self._make_room()
                settings = self.settings.settings_for(model_id, resolved.config)
                draft_path = None
                if settings.spec_type == "draft" and settings.draft_model:
                    draft_path = (await asyncio.to_thread(self._resolver, settings.draft_model)).path
                loaded = await asyncio.to_thread(_load_blocking, model_id, resolved, settings, draft_path)
                if self._closed:  # closed while loading: nobody will unload it later
                    await asyncio.to_thread(loaded.close)
                    raise ShuttingDownError("the model pool is closed (shutting down)")
                self._loaded[model_id] = loaded
                self._names[name] = model_id
        finally:
            self._loading.pop(model_id, None)
        logger.info("loaded %s (%s, %d slots, ctx %d)", model_id, loaded.kind, len(loaded.engine.slots),
                    loaded.engine.n_ctx)
        return loaded

    @contextlib.asynccontextmanager
    async def use(self, model: str | None, admit: Admit | None = None) -> AsyncIterator[LoadedModel]:
        """Hold a model for the duration of a request (it cannot be unloaded meanwhile);
        `admit` as for `get`."""
        loaded = await self.get(model, admit)
        loaded.enter()
        try:
            yield loaded
        finally:
            loaded.leave()

    async def _make_room(self) -> None:
        while len(self._loaded) >= max(1, self.settings.max_models):
            idle = [m for m in self._loaded.values() if m.active == 0 and m.id not in self._claims]
            if not idle:
                raise BusyError(
                    f"{len(self._loaded)} models are loaded and all are busy (max_models={self.settings.max_models})"
                )
            victim = min(idle, key=lambda m: m.last_used)
            await self._unload(victim.id, wait=False)

    # --- unloading -----------------------------------------------------------------

    async def unload(self, model_id: str, *, wait: bool = True) -> bool:
        """Unload a model; with `wait`, after its active streams finish. False if not loaded."""
        try:
            resolved_id = self._loaded[model_id].id if model_id in self._loaded else self.resolve(model_id).id
        except ModelNotFoundError:
            return False
        return await self._unload(resolved_id, wait=wait)

    async def _unload(self, model_id: str, *, wait: bool) -> bool:
        loaded = self._loaded.get(model_id)
        if loaded is None:
            return False
        if wait:
            await loaded.until_idle()
        if self._loaded.get(model_id) is not loaded:
            return False
        del self._loaded[model_id]
        self._names = {name: mid for name, mid in self._names.items() if mid != model_id}
        await asyncio.to_thread(loaded.engine.close)  # open streams end now, with finish reason "cancelled"
        if loaded.active:
            # A request holding the model may be in a worker thread (tokenizing, building a
            # media prompt): freeing the model under it would crash the process.
            try:
                await asyncio.wait_for(loaded.until_idle(), FREE_GRACE_SECONDS)
            except TimeoutError:
                loaded.free_when_idle()
                logger.warning("unloaded %s; %d request(s) still hold it, it is freed when they end", model_id,
                               loaded.active)
                return True
        await asyncio.to_thread(loaded.close)
        logger.info("unloaded %s", model_id)
        return True

    async def _reap_idle(self) -> None:
        ttl = self.settings.ttl_seconds
        while True:
            await asyncio.sleep(min(5.0, max(0.05, ttl / 4)))
            now = time.monotonic()
            for loaded in list(self._loaded.values()):
                if loaded.active == 0 and loaded.engine.active == 0 and now - loaded.last_used >= ttl:
                    try:
                        await self._unload(loaded.id, wait=False)
                    except Exception:  # the reaper must survive one model's failure to free
                        logger.exception("unloading idle model %s failed", loaded.id)

    # --- status ----------------------------------------------------------------------

    def ps(self) -> list[LoadedModelStatus]:
        now = time.monotonic()
        ttl = self.settings.ttl_seconds
        rows = []
        for loaded in self._loaded.values():
            idle = 0.0 if loaded.active else now - loaded.last_used
            rows.append(
                LoadedModelStatus(
                    id=loaded.id,
                    path=str(loaded.resolved.path),
                    size_bytes=loaded.model.size_bytes,
                    context_size=loaded.engine.n_ctx,
                    slots=len(loaded.engine.slots),
                    active_streams=loaded.active,
                    queued=loaded.engine.queued,
                    idle_seconds=round(idle, 1),
                    expires_in_seconds=(max(0.0, ttl - idle) if ttl > 0 and not loaded.active else None),
                    kind=loaded.kind,  # type: ignore[arg-type]
                )
            )
        return rows

    def models(self) -> list[LoadedModel]:
        return list(self._loaded.values())
