"""What the chat and text completion streams share: the chunk envelope, the usage chunk, `[DONE]`.

Both OpenAI streams are one kind of object (`chat.completion.chunk` or `text_completion`)
under one id and `created` for the whole stream; with `stream_options.include_usage`
every chunk carries `"usage": null` and a last chunk with no choices carries the usage
summed over the choices. An error after the stream began is an OpenAI error body.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from kronk.engine.types import Usage
from kronk.http_errors import openai_error_body
from kronk.sdk.requests import new_id
from kronk.server.openai import protocol as p
from kronk.server.streaming import Frame


class ChunkStreamEncoder:
    """The base of ChatStreamEncoder and CompletionStreamEncoder: they differ in their choices only."""

    object: ClassVar[str]
    """The chunks' `object` field."""
    id_prefix: ClassVar[str]

    def __init__(self, model: str, *, include_usage: bool = False, logprobs: bool = False) -> None:
        self.id = new_id(self.id_prefix)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.usages: dict[int, Usage] = {}
        """The Finish usage of each choice, summed in the usage chunk."""

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": p.SYSTEM_FINGERPRINT,
            "choices": choices,
        }

    def _frame(self, choice: dict[str, Any]) -> Frame:
        """A chunk of one choice (`"usage": null` on it when the usage chunk will come)."""
        chunk = self._envelope([choice])
        if self.include_usage:
            chunk["usage"] = None
        return None, chunk

    def finish(self) -> list[Frame]:
        frames: list[Frame] = []
        if self.include_usage:
            usage = p.merge_usage(list(self.usages.values()))
            frames.append((None, {**self._envelope([]), "usage": p.encode_usage(usage)}))
        frames.append((None, "[DONE]"))
        return frames

    def error(self, exc: BaseException) -> list[Frame]:
        return [(None, openai_error_body(exc))]
