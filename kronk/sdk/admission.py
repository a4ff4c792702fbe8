"""Can this model serve this request? Each check is asked twice with the same wording:
from the resolver's metadata before the pool loads anything (so a request the model
cannot serve neither loads it nor evicts another model), and from the loaded model,
which settles whatever the metadata could not tell (a fact that is None is skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kronk.chat.messages import media_parts
from kronk.errors import CapabilityError
from kronk.sdk.pool import Admit, LoadedModel, Resolved, expected_kind
from kronk.sdk.settings import ModelSettings


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a check needs to know about a model; None where it is not known yet."""

    id: str
    kind: str | None
    """"chat", "embedding" or "rerank" (see kronk.sdk.pool._model_kind)."""
    projector: bool
    """Whether a vision/audio projector is (or will be) loaded with the model."""
    vision: bool | None
    audio: bool | None

    @classmethod
    def of_loaded(cls, loaded: LoadedModel) -> ModelFacts:
        projector = loaded.projector
        return cls(loaded.id, loaded.kind, projector is not None,
                   bool(projector and projector.supports_vision), bool(projector and projector.supports_audio))

    @classmethod
    def of_resolved(cls, resolved: Resolved, settings: ModelSettings) -> ModelFacts:
        caps = getattr(resolved, "capabilities", None)
        projector = resolved.projector is not None
        vision = audio = None
        # The store reads the flags from the projector's header; none set means it could not.
        if caps is not None and projector and (getattr(caps, "vision", False) or getattr(caps, "audio", False)):
            vision, audio = bool(getattr(caps, "vision", False)), bool(getattr(caps, "audio", False))
        return cls(resolved.id, expected_kind(resolved, settings), projector, vision, audio)


Check = Callable[[ModelFacts], None]


def before_load(check: Check) -> Admit:
    """`check` as the pool's admission hook (asked with metadata before a load)."""
    return lambda resolved, settings: check(ModelFacts.of_resolved(resolved, settings))


def generative(what: str) -> Check:
    """The model must generate text (a chat-kind model, with or without a template)."""

    def check(facts: ModelFacts) -> None:
        if facts.kind is not None and facts.kind != "chat":
            raise CapabilityError(f"model {facts.id!r} is a {facts.kind} model and cannot serve {what}", param="model")

    return check


def chat(messages: Any) -> Check:
    """A chat request: a generative model, and a projector for each image or audio part."""
    kind = generative("chat completions")

    def check(facts: ModelFacts) -> None:
        if facts.kind is None:
            return  # the kind is checked first: which error comes first is not known before loading
        kind(facts)
        for index, media in media_parts(messages):
            where = f"messages[{index}].content"
            if not facts.projector:
                raise CapabilityError(
                    f"model {facts.id!r} has no vision/audio projector loaded; it accepts text only", param=where)
            # Checked before decoding: libmtmd refuses to decode audio for a vision-only projector.
            if media == "audio" and facts.audio is False:
                raise CapabilityError(f"model {facts.id!r}'s projector does not accept audio", param=where)
            if media == "image" and facts.vision is False:
                raise CapabilityError(f"model {facts.id!r}'s projector does not accept images", param=where)

    return check


def embedding(facts: ModelFacts) -> None:
    """Embeddings come from embedding and rerank models (a chat model's are not pooled)."""
    if facts.kind == "chat":
        raise CapabilityError(
            f"model {facts.id!r} is a chat model; load an embedding model for /v1/embeddings", param="model"
        )


def rerank(facts: ModelFacts) -> None:
    if facts.kind is not None and facts.kind != "rerank":
        raise CapabilityError(f"model {facts.id!r} is not a reranking model", param="model")
