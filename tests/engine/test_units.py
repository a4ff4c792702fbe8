"""Pure unit tests of the engine's parts that need no model: stop strings, the RAM prompt
cache and the slot state machine."""

from __future__ import annotations

import numpy as np
import pytest

from kronk.engine.cache import PromptCache, common_prefix
from kronk.engine.jobs import Job
from kronk.engine.slot import IllegalTransition, Run, Slot, SlotState
from kronk.engine.stop import StopMatcher
from kronk.engine.types import GenerateRequest


def tokens(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


# --- StopMatcher ----------------------------------------------------------------


def test_stop_string_split_over_pushes_is_never_emitted() -> None:
    stop = StopMatcher(["</end>"])
    assert stop.push("hello </") == ("hello ", False)
    assert stop.push("en") == ("", False)
    assert stop.push("d> after") == ("", True)
    assert stop.matched == "</end>"


def test_held_text_is_released_when_it_stops_matching() -> None:
    stop = StopMatcher(["STOP"])
    assert stop.push("ST") == ("", False)
    assert stop.push("ART") == ("START", False)
    assert stop.push("S") == ("", False)
    assert stop.flush() == "S"
    assert stop.matched is None


def test_the_earliest_of_several_stop_strings_wins() -> None:
    stop = StopMatcher(["bb", "a"])
    assert stop.push("xbba") == ("x", True)
    assert stop.matched == "bb"


def test_no_stop_strings_passes_text_through() -> None:
    stop = StopMatcher(["", ""])
    assert stop.push("anything") == ("anything", False)
    assert stop.flush() == ""


# --- PromptCache ------------------------------------------------------------------


def test_common_prefix() -> None:
    assert common_prefix(tokens(1, 2, 3), tokens(1, 2, 4)) == 2
    assert common_prefix(tokens(1, 2), tokens(1, 2, 3)) == 2
    assert common_prefix(tokens(), tokens(1)) == 0


def test_lookup_is_not_a_hit_until_the_entry_is_used() -> None:
    cache = PromptCache(1000, min_tokens=2)
    cache.put(tokens(1, 2, 3, 4), b"x" * 10)
    length, entry = cache.best(tokens(1, 9))  # only a shared BOS
    assert length == 1 and entry is not None
    assert cache.hits == 0
    length, entry = cache.best(tokens(1, 2, 3, 4, 5))
    assert length == 4 and entry is not None
    cache.used(entry)
    assert cache.hits == 1


def test_no_overlap_finds_nothing() -> None:
    cache = PromptCache(1000, min_tokens=2)
    cache.put(tokens(1, 2, 3), b"x")
    assert cache.best(tokens(7, 8)) == (0, None)


def test_prefix_entries_are_replaced_and_short_ones_refused() -> None:
    cache = PromptCache(1000, min_tokens=3)
    cache.put(tokens(1, 2), b"x")  # below min_tokens
    assert len(cache) == 0
    cache.put(tokens(1, 2, 3), b"abc")
    cache.put(tokens(1, 2, 3, 4), b"abcd")  # the first is its prefix: redundant
    assert len(cache) == 1 and cache.used_bytes == 4


def test_least_recently_used_goes_first_past_the_budget() -> None:
    cache = PromptCache(20, min_tokens=1)
    cache.put(tokens(1, 1), b"a" * 8)
    cache.put(tokens(2, 2), b"b" * 8)
    _, first = cache.best(tokens(1, 1))
    assert first is not None
    cache.used(first)  # now the most recent
    cache.put(tokens(3, 3), b"c" * 8)  # over budget: (2, 2) goes
    assert cache.best(tokens(2, 2)) == (0, None)
    assert cache.best(tokens(1, 1))[0] == 2 and cache.used_bytes == 16


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    cache = PromptCache(4, min_tokens=1)
    cache.put(tokens(1, 2), b"x" * 5)
    assert len(cache) == 0 and cache.used_bytes == 0
    assert len(PromptCache(0, min_tokens=1)) == 0


# --- the slot state machine -----------------------------------------------------------


class _Sampler:
    closed = False

    def close(self) -> None:
        self.closed = True


def make_run(prompt: list[int], keep: int = 0) -> Run:
    return Run(Job(GenerateRequest(prompt), lambda item: None), _Sampler(), keep, 8)  # type: ignore[arg-type]


def test_a_request_goes_free_prefill_generate_cached() -> None:
    slot = Slot(0, 16)
    assert slot.state is SlotState.FREE and not slot.busy
    run = make_run([1, 2, 3])
    slot.bind(run)
    assert slot.state is SlotState.PREFILL and slot.job is run.job
    slot.n_cached = 3
    slot.prefilled()
    assert slot.state is SlotState.GENERATE
    assert slot.unbind(1.0) is run
    assert slot.state is SlotState.CACHED and slot.run is None and slot.last_used == 1.0
    assert run.sampler.closed  # type: ignore[attr-defined]
    slot.hold(0)
    assert slot.state is SlotState.FREE


def test_a_request_released_before_any_cell_leaves_the_slot_free() -> None:
    slot = Slot(0, 16)
    slot.bind(make_run([1, 2]))
    slot.unbind(0.0)
    assert slot.state is SlotState.FREE


def test_a_cached_slot_reuses_its_prefix() -> None:
    slot = Slot(0, 16)
    slot.filled(tokens(1, 2, 3, 4))
    assert slot.state is SlotState.CACHED and slot.n_cached == 4
    slot.hold(2)
    slot.bind(make_run([1, 2, 5], keep=2))
    assert slot.state is SlotState.PREFILL


@pytest.mark.parametrize(
    "setup, action",
    [
        ("free", lambda s: s.prefilled()),
        ("free", lambda s: s.unbind(0.0)),
        ("prefill", lambda s: s.bind(make_run([1]))),
        ("prefill", lambda s: s.hold(0)),
        ("generate", lambda s: s.prefilled()),
        ("generate", lambda s: s.filled(tokens(1, 2))),
        ("cached", lambda s: s.filled(tokens(1, 2))),
        ("cached", lambda s: s.unbind(0.0)),
        ("free", lambda s: s.bind(make_run([1, 2, 3], keep=2))),  # reuses cells it does not have
    ],
)
def test_illegal_transitions_fail_loudly(setup: str, action) -> None:  # type: ignore[no-untyped-def]
    slot = Slot(3, 16)
    if setup == "cached":
        slot.filled(tokens(1, 2))
    elif setup in ("prefill", "generate"):
        slot.bind(make_run([1, 2]))
        if setup == "generate":
            slot.prefilled()
    before = slot.state
    with pytest.raises(IllegalTransition, match="slot 3"):
        action(slot)
    assert slot.state is before
