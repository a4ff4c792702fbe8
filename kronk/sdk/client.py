"""`AsyncKronk`: the high-level asyncio SDK (the server calls exactly this).

    kronk = AsyncKronk(PoolSettings(default_model="smollm2"))
    await kronk.start()
    result = await kronk.chat(ChatRequest(messages=[{"role": "user", "content": "Hi"}]))
    async for event in kronk.chat_stream(request): ...
    await kronk.close()

Streams are async generators: closing one (or cancelling the task iterating it)
cancels the generation and frees its slot at the engine's next step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, Self

from kronk.chat.fit import ContextBudget
from kronk.chat.plan import ChatPlan, prepare_chat
from kronk.chat.prompt import prompt_tokens
from kronk.engine.jobs import AsyncEventQueue, Job
from kronk.engine.types import (
    Event,
    Finish,
    GenerateRequest,
    ReasoningDelta,
    SamplingParams,
    TextDelta,
    ToolCallDelta,
)
from kronk.errors import CapabilityError, InvalidRequestError, KronkError
from kronk.sdk import admission
from kronk.sdk.admission import ModelFacts, before_load
from kronk.sdk.collect import Choices
from kronk.sdk.embeddings import embedding_tokens, ranked, rerank_tokens, shaped
from kronk.sdk.pool import LoadedModel, ModelPool, Resolver
from kronk.sdk.requests import (
    ChatRequest,
    ChatResult,
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    LoadedModelStatus,
    ModelInfo,
    RerankRequest,
    RerankResult,
    ToolsDropped,
)
from kronk.sdk.settings import PoolSettings

log = logging.getLogger("kronk.sdk")


def _with_defaults(sampling: SamplingParams, defaults: dict[str, Any], explicit: set[str] | None) -> SamplingParams:
    """Apply a model's default sampling options to fields the request left at their defaults."""
    if not defaults:
        return sampling
    base = SamplingParams()
    updates = {}
    for name, value in defaults.items():
        if not hasattr(base, name):
            continue
        if explicit is not None and name in explicit:
            continue
        if explicit is None and getattr(sampling, name) != getattr(base, name):
            continue
        updates[name] = value
    return dataclasses.replace(sampling, **updates) if updates else sampling


class AsyncKronk:
    def __init__(self, pool_settings: PoolSettings | None = None, resolver: Resolver | None = None) -> None:
        self.pool = ModelPool(pool_settings, resolver)

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def load(self, model: str | None = None) -> ModelInfo:
        """Load a model now (e.g. the default model at server start)."""
        loaded = await self.pool.get(model)
        return self._info(loaded)

    # --- shared plumbing ---------------------------------------------------------------

    async def _generate(
        self, loaded: LoadedModel, request: GenerateRequest, n: int
    ) -> AsyncIterator[Event]:
        """Run `n` choices of one request and yield their events (interleaved) until all finish."""
        sink = AsyncEventQueue()
        jobs: list[Job] = []
        try:
            for choice in range(n):
                choice_request = request
                if n > 1 and request.sampling.seed is not None:
                    sampling = dataclasses.replace(request.sampling, seed=request.sampling.seed + choice)
                    choice_request = dataclasses.replace(request, sampling=sampling)
                jobs.append(loaded.engine.submit(choice_request, sink, choice))
            remaining = n
            while remaining:
                item = await sink.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Finish):
                    remaining -= 1
                yield item
        finally:
            for job in jobs:
                if not job.done:
                    loaded.engine.cancel(job)

    def _sampling(self, loaded: LoadedModel, sampling: SamplingParams, explicit: set[str] | None) -> SamplingParams:
        return _with_defaults(sampling, loaded.settings.sampling, explicit)

    def _max_tokens(self, loaded: LoadedModel, requested: int | None) -> int | None:
        return requested if requested is not None else (loaded.settings.max_tokens_default or None)

    # --- chat ----------------------------------------------------------------------------

    async def _chat_prompt(self, loaded: LoadedModel, request: ChatRequest) -> tuple[ChatPlan, list[int], Any]:
        """The plan, the prompt tokens and, for a prompt with images/audio, its `MediaPrompt`
        (then the tokens are the text tokens with -1 at each media position)."""
        admission.chat(request.messages)(ModelFacts.of_loaded(loaded))
        vocab = loaded.model.vocab
        bos = vocab.token_text(vocab.bos) if vocab.bos >= 0 else ""
        eos = vocab.token_text(vocab.eos) if vocab.eos >= 0 else ""
        template = request.template or loaded.chat_template(bos, eos)
        marker = loaded.projector.marker if loaded.projector is not None else None
        # Tools are fitted by the prompt's text tokens; a media prompt's image/audio
        # tokens are not known before it is built (the engine still checks the total).
        tokenized: dict[str, list[int]] = {}

        def count(prompt: str) -> int:
            if prompt not in tokenized:
                tokenized[prompt] = prompt_tokens(vocab, prompt)
            return len(tokenized[prompt])

        budget = ContextBudget.for_request(loaded.engine.n_ctx, self._max_tokens(loaded, request.max_tokens), count)
        plan = await loaded.to_thread(functools.partial(
            prepare_chat, request, template_source=template, bos_token=bos, eos_token=eos, media_marker=marker,
            budget=budget,
        ))
        if plan.media:
            return plan, *await loaded.to_thread(self._media_prompt, loaded, plan)
        tokens = tokenized.get(plan.prompt)
        if tokens is None:
            tokens = await loaded.to_thread(prompt_tokens, vocab, plan.prompt)
        return plan, tokens, None

    @staticmethod
    def _media_prompt(loaded: LoadedModel, plan: ChatPlan) -> tuple[list[int], Any]:
        from kronk.llama.mtmd import MediaPrompt
        from kronk.sdk.media import media_bytes

        blobs = [media_bytes(part, f"messages (media part {i})") for i, part in enumerate(plan.media)]
        media = MediaPrompt.build(loaded.projector, plan.prompt, blobs)
        return media.chunks.token_ids(), media

    async def chat_stream(
        self, request: ChatRequest, *, explicit: set[str] | None = None
    ) -> AsyncIterator[Event | ToolsDropped]:
        """Events of a chat completion: text, reasoning and tool-call deltas, then Finish per choice;
        first a `ToolsDropped` when tools were left out because they did not fit the context.

        `explicit`: names of sampling fields the caller set (so model defaults apply to the rest).
        """
        if request.n < 1:
            raise InvalidRequestError("n must be at least 1", param="n")
        admit = before_load(admission.chat(request.messages))
        async with self.pool.use(request.model, admit) as loaded, aclosing(self._chat_events(loaded, request, explicit)) as events:
            async for event in events:
                yield event

    async def _chat_events(
        self, loaded: LoadedModel, request: ChatRequest, explicit: set[str] | None
    ) -> AsyncIterator[Event | ToolsDropped]:
        """`chat_stream` on a model the caller holds."""
        plan, tokens, media = await self._chat_prompt(loaded, request)
        sampling = self._sampling(loaded, request.sampling, explicit)
        if plan.grammar and not request.sampling.grammar:
            sampling = dataclasses.replace(
                sampling,
                grammar=plan.grammar,
                grammar_lazy_patterns=list(getattr(plan, "grammar_lazy_patterns", []) or []),
                grammar_trigger_tokens=list(getattr(plan, "grammar_trigger_tokens", []) or []),
            )
        generate = GenerateRequest(
            prompt_tokens=tokens,
            sampling=sampling,
            max_tokens=self._max_tokens(loaded, request.max_tokens),
            stop=list(request.stop) + list(getattr(plan, "extra_stop", []) or []),
            ignore_eos=request.ignore_eos,
            logprobs=request.logprobs,
            top_logprobs=request.top_logprobs,
            media=media,
            speculation=request.speculation,
        )
        if media is not None and request.n > 1:
            media.close()
            raise InvalidRequestError("n > 1 is not supported with image or audio input", param="n")
        parsers = [plan.new_parser() for _ in range(request.n)]
        called = [False] * request.n
        reasoning: list[list[str]] = [[] for _ in range(request.n)]  # thinking text, counted at Finish
        if plan.tools_dropped:
            log.warning(
                "model %s: %d of the request's tools do not fit its context of %d tokens; serving the chat "
                "without %s", loaded.id, len(plan.tools_dropped), loaded.engine.n_ctx, ", ".join(plan.tools_dropped),
            )
            yield ToolsDropped(list(plan.tools_dropped))
        async for event in self._generate(loaded, generate, request.n):
            parser = parsers[event.choice]
            if isinstance(event, TextDelta):
                out = parser.feed(event.text) if event.text else []
                if event.logprobs:
                    out = self._attach_logprobs(out, event)
            elif isinstance(event, Finish):
                out = parser.finish()
            else:
                continue
            for item in out:
                item.choice = event.choice
                called[event.choice] |= isinstance(item, ToolCallDelta)
                if isinstance(item, ReasoningDelta):
                    reasoning[event.choice].append(item.text)
                yield item
            if isinstance(event, Finish):
                if called[event.choice] and event.reason == "stop":
                    event.reason = "tool_calls"
                if reasoning[event.choice]:
                    thought = loaded.model.vocab.tokenize("".join(reasoning[event.choice]), add_special=False,
                                                          parse_special=False)
                    event.usage.reasoning_tokens = min(len(thought), event.usage.completion_tokens)
                yield event

    @staticmethod
    def _attach_logprobs(out: list[Event], event: TextDelta) -> list[Event]:
        """Keep logprobs even when the parser held the text back or turned it into a tool call."""
        for item in out:
            if isinstance(item, TextDelta):
                item.logprobs = (item.logprobs or []) + list(event.logprobs or [])
                return out
        return out + [TextDelta("", event.choice, event.logprobs)]

    async def chat(self, request: ChatRequest, *, explicit: set[str] | None = None) -> ChatResult:
        if request.n < 1:
            raise InvalidRequestError("n must be at least 1", param="n")
        choices = Choices()
        dropped: list[str] = []
        admit = before_load(admission.chat(request.messages))
        async with self.pool.use(request.model, admit) as loaded, aclosing(self._chat_events(loaded, request, explicit)) as events:
            async for event in events:
                if isinstance(event, ToolsDropped):
                    dropped = event.names
                else:
                    choices.add(event)
        return ChatResult(model=loaded.id, choices=choices.chat(logprobs=request.logprobs), usage=choices.usage,
                          tools_dropped=dropped)

    async def tokenize_chat(self, request: ChatRequest) -> list[int]:
        """The prompt tokens a chat request would evaluate (count_tokens)."""
        async with self.pool.use(request.model, before_load(admission.chat(request.messages))) as loaded:
            _plan, tokens, media = await self._chat_prompt(loaded, request)
            if media is not None:
                media.close()
            return tokens

    async def render_chat(self, request: ChatRequest) -> str:
        """The prompt text the model's template renders for a chat request."""
        async with self.pool.use(request.model, before_load(admission.chat(request.messages))) as loaded:
            plan, _tokens, media = await self._chat_prompt(loaded, request)
            if media is not None:
                media.close()
            return str(plan.prompt)

    # --- completions --------------------------------------------------------------------

    def _completion_tokens(self, loaded: LoadedModel, request: CompletionRequest) -> list[int]:
        vocab = loaded.model.vocab
        if request.suffix is not None:
            if not vocab.supports_fim:
                raise CapabilityError(
                    f"model {loaded.id!r} has no fill-in-the-middle tokens; `suffix` is not supported", param="suffix"
                )
            if not isinstance(request.prompt, str):
                raise InvalidRequestError("prompt must be a string when suffix is given", param="prompt")
            prefix = vocab.tokenize(request.prompt, add_special=False, parse_special=False)
            suffix = vocab.tokenize(request.suffix, add_special=False, parse_special=False)
            tokens = [vocab.fim_pre, *prefix, vocab.fim_suf, *suffix, vocab.fim_mid]
            if vocab.add_bos and vocab.bos >= 0:
                tokens.insert(0, vocab.bos)
            return tokens
        if isinstance(request.prompt, str):
            if not request.prompt:
                raise InvalidRequestError("prompt is empty", param="prompt")
            return vocab.tokenize(request.prompt, add_special=request.add_special, parse_special=True)
        tokens = [int(t) for t in request.prompt]
        vocab.check_tokens(tokens)
        return tokens

    async def complete_stream(self, request: CompletionRequest, *, explicit: set[str] | None = None) -> AsyncIterator[Event]:
        if request.n < 1:
            raise InvalidRequestError("n must be at least 1", param="n")
        async with self.pool.use(request.model, before_load(_COMPLETIONS)) as loaded, \
                aclosing(self._complete_events(loaded, request, explicit)) as events:
            async for event in events:
                yield event

    async def _complete_events(
        self, loaded: LoadedModel, request: CompletionRequest, explicit: set[str] | None
    ) -> AsyncIterator[Event]:
        """`complete_stream` on a model the caller holds."""
        _COMPLETIONS(ModelFacts.of_loaded(loaded))
        tokens = await loaded.to_thread(self._completion_tokens, loaded, request)
        generate = GenerateRequest(
            prompt_tokens=tokens,
            sampling=self._sampling(loaded, request.sampling, explicit),
            max_tokens=self._max_tokens(loaded, request.max_tokens),
            stop=list(request.stop),
            ignore_eos=request.ignore_eos,
            logprobs=request.logprobs,
            top_logprobs=request.top_logprobs,
            speculation=request.speculation,
        )
        if request.echo:
            echo = request.prompt if isinstance(request.prompt, str) else loaded.model.vocab.detokenize(tokens)
            for choice in range(request.n):
                yield TextDelta(echo, choice)
        async for event in self._generate(loaded, generate, request.n):
            yield event

    async def complete(self, request: CompletionRequest, *, explicit: set[str] | None = None) -> CompletionResult:
        if request.n < 1:
            raise InvalidRequestError("n must be at least 1", param="n")
        choices = Choices()
        async with self.pool.use(request.model, before_load(_COMPLETIONS)) as loaded, \
                aclosing(self._complete_events(loaded, request, explicit)) as events:
            async for event in events:
                choices.add(event)
        return CompletionResult(model=loaded.id, choices=choices.completion(request.n, logprobs=request.logprobs),
                                usage=choices.usage)

    # --- embeddings and rerank --------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        if not request.input:
            raise InvalidRequestError("input is empty", param="input")

        def tokenize(loaded: LoadedModel) -> list[list[int]]:
            limit = min(loaded.engine.n_ctx, loaded.engine.ctx.n_batch)
            return embedding_tokens(loaded.model.vocab, request.input, limit=limit, truncate=request.truncate)

        model_id, vectors, prompt_tokens = await self._pooled(request.model, admission.embedding, tokenize)
        out = shaped(vectors, dimensions=request.dimensions, normalize=request.normalize)
        return EmbeddingResult(model=model_id, embeddings=out, prompt_tokens=prompt_tokens)

    async def rerank(self, request: RerankRequest) -> RerankResult:
        if not request.documents:
            raise InvalidRequestError("documents is empty", param="documents")

        def tokenize(loaded: LoadedModel) -> list[list[int]]:
            return rerank_tokens(loaded.model.vocab, request.query, request.documents)

        model_id, scores, prompt_tokens = await self._pooled(request.model, admission.rerank, tokenize)
        items = ranked(scores, request.documents, request.top_n)
        return RerankResult(model=model_id, results=items, prompt_tokens=prompt_tokens)

    async def _pooled(
        self, model: str | None, admit: admission.Check,
        tokenize: Callable[[LoadedModel], list[list[int]]],
    ) -> tuple[str, list[Any], int]:
        """Run token lists through a pooling model (embeddings, rerank scores): `admit` checks the
        model before it loads and once loaded, `tokenize` runs on a worker thread. Returns the
        model id, one output per token list, and the prompt token count."""
        async with self.pool.use(model, before_load(admit)) as loaded:
            admit(ModelFacts.of_loaded(loaded))
            engine = loaded.engine
            token_lists = await loaded.to_thread(tokenize, loaded)
            outputs = await asyncio.wrap_future(engine.call(lambda: engine.embed_tokens(token_lists, normalize=False)))
            return loaded.id, outputs, sum(len(t) for t in token_lists)

    # --- tokens ------------------------------------------------------------------------------

    async def tokenize(
        self, model: str | None, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        async with self.pool.use(model) as loaded:
            return await loaded.to_thread(functools.partial(
                loaded.model.vocab.tokenize, text, add_special=add_special, parse_special=parse_special
            ))

    async def detokenize(self, model: str | None, tokens: list[int]) -> str:
        async with self.pool.use(model) as loaded:
            return await loaded.to_thread(loaded.model.vocab.detokenize, list(tokens))

    async def token_pieces(self, model: str | None, tokens: list[int]) -> list[str]:
        async with self.pool.use(model) as loaded:
            vocab = loaded.model.vocab
            vocab.check_tokens(list(tokens))
            return [vocab.piece(int(t), special=True).decode("utf-8", "replace") for t in tokens]

    # --- models and status ---------------------------------------------------------------------

    def _info(self, loaded: LoadedModel) -> ModelInfo:
        caps = loaded.model.info()
        caps["kind"] = loaded.kind
        caps["chat"] = loaded.kind == "chat"
        caps["vision"] = bool(loaded.projector and loaded.projector.supports_vision)
        caps["audio"] = bool(loaded.projector and loaded.projector.supports_audio)
        return ModelInfo(
            id=loaded.id, path=str(loaded.resolved.path), loaded=True, created=int(loaded.loaded_at), capabilities=caps
        )

    def list_models(self) -> list[ModelInfo]:
        """Installed models (from the store) plus whatever is loaded. Blocking: it reads the
        store's index on disk, so event-loop callers run it in a thread."""
        infos = {info.id: info for info in _stored_models()}
        for loaded in self.pool.models():
            infos[loaded.id] = self._info(loaded)
        return sorted(infos.values(), key=lambda info: info.id)

    async def model_info(self, model: str | None) -> ModelInfo:
        resolved = await asyncio.to_thread(self.pool.resolve, model)
        loaded = self.pool.loaded(resolved.id)
        if loaded is not None:
            return self._info(loaded)
        for info in await asyncio.to_thread(_stored_models):
            if info.id == resolved.id:
                return info
        return ModelInfo(id=resolved.id, path=str(resolved.path), loaded=False)

    def ps(self) -> list[LoadedModelStatus]:
        return self.pool.ps()

    async def unload(self, model_id: str) -> bool:
        return await self.pool.unload(model_id)

    def stats(self) -> dict[str, Any]:
        """Per loaded model: engine statistics (slots, queue, KV use, token totals, cache hits)."""
        return {loaded.id: loaded.engine.stats() for loaded in self.pool.models()}


_COMPLETIONS = admission.generative("completions")


def _stored_models() -> list[ModelInfo]:
    """The store's installed models, not loaded (blocking: reads the index on disk)."""
    infos = []
    try:
        from kronk.models.store import ModelStore

        for entry in ModelStore().list():
            caps = entry.capabilities
            infos.append(ModelInfo(
                id=entry.id,
                path=str(entry.path),
                loaded=False,
                capabilities=dataclasses.asdict(caps) if dataclasses.is_dataclass(caps) else dict(caps or {}),
            ))
    except (ImportError, KronkError, OSError, AttributeError, TypeError):
        pass
    return infos
