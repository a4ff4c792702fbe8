"""A bounded RAM cache of sequence states, so a conversation's prefix survives while
its slot serves other requests.

Entries are (tokens, state bytes) saved from a slot's KV before the slot is reused
for an unrelated prompt. Lookup returns the entry sharing the longest prefix with a new
prompt. Least recently used entries go first when the byte budget is exceeded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two int32 token arrays (vectorised)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass(slots=True)
class CachedState:
    tokens: np.ndarray
    state: bytes


class PromptCache:
    """Sequence states by token prefix, least recently used dropped first past the byte budget."""

    def __init__(self, budget_bytes: int, min_tokens: int = 32) -> None:
        self.budget_bytes = budget_bytes
        self.min_tokens = min_tokens
        self._entries: OrderedDict[int, CachedState] = OrderedDict()
        self._next_key = 0
        self.used_bytes = 0
        self.hits = 0
        """Entries whose KV was restored and reused (not lookups that merely overlapped)."""

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, tokens: np.ndarray, state: bytes) -> None:
        if self.budget_bytes <= 0 or len(tokens) < self.min_tokens or len(state) > self.budget_bytes:
            return
        # An entry that is a prefix of the new one is now redundant.
        for key, entry in list(self._entries.items()):
            if len(entry.tokens) <= len(tokens) and common_prefix(entry.tokens, tokens) == len(entry.tokens):
                self._drop(key)
        self._entries[self._next_key] = CachedState(tokens.copy(), state)
        self._next_key += 1
        self.used_bytes += len(state)
        while self.used_bytes > self.budget_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def best(self, prompt: np.ndarray) -> tuple[int, CachedState | None]:
        """The entry with the longest common prefix with `prompt` (and that length).

        A lookup is not a hit: the caller reports `used(entry)` once the entry's KV is
        restored and serves the prompt, so the hit count means saved prefill work."""
        best_len, best_entry = 0, None
        for entry in self._entries.values():
            length = common_prefix(entry.tokens, prompt)
            if length > best_len:
                best_len, best_entry = length, entry
        return best_len, best_entry

    def used(self, entry: CachedState) -> None:
        """`entry`'s KV was restored for a prompt: a hit, and the entry becomes the most recent."""
        self.hits += 1
        for key, candidate in self._entries.items():
            if candidate is entry:
                self._entries.move_to_end(key)
                return

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.used_bytes -= len(entry.state)
