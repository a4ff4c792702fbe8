"""Unloading a model, or closing the SDK, while a stream runs: the stream finishes (an
explicit unload waits for it) or ends with finish reason "cancelled"; never a hang, and
never a model freed under a request that is still using it (that would crash the process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kronk.engine.types import Finish, TextDelta
from kronk.sdk import AsyncKronk
from kronk.sdk import pool as pool_module
from tests.sdk.conftest import MakeKronk, eventually, long_chat

pytestmark = pytest.mark.requires_libs


async def drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


async def test_unload_waits_for_an_open_stream_to_finish(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    stream = kronk.chat_stream(long_chat("alpha", tokens=60))
    first = await anext(stream)
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None and isinstance(first, TextDelta)
    unload = asyncio.create_task(kronk.unload("alpha"))
    # the engine is done generating, but the stream is still open: the unload keeps waiting
    await eventually(lambda: alpha.engine.active == 0, "the engine has generated every token")
    await asyncio.sleep(0)
    assert not unload.done() and not alpha.model.closed
    events = [first] + await drain(stream)
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "length" and finish.usage.completion_tokens == 60
    assert sum(1 for event in events if isinstance(event, Finish)) == 1
    assert await asyncio.wait_for(unload, 30) is True
    assert alpha.model.closed and not kronk.ps()


async def test_closing_the_sdk_ends_an_open_stream_with_a_finish_reason(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    stream = kronk.chat_stream(long_chat("alpha", tokens=400))
    await anext(stream)
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None
    consumer = asyncio.create_task(drain(stream))
    await asyncio.wait_for(kronk.close(), 30)
    events = await asyncio.wait_for(consumer, 30)
    finish = events[-1]
    # cancelled mid-generation, or (on a very fast machine) already at its token limit
    assert isinstance(finish, Finish) and finish.reason in ("cancelled", "length"), finish
    assert finish.usage.completion_tokens <= 400
    assert all(isinstance(event, TextDelta) for event in events[:-1])
    assert alpha.model.closed


async def test_closing_the_sdk_ends_a_request_waiting_for_a_slot(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk(slots=1)
    running = kronk.chat_stream(long_chat("alpha", tokens=400))
    await anext(running)
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None and len(alpha.engine.slots) == 1
    queued = asyncio.create_task(drain(kronk.chat_stream(long_chat("alpha", tokens=5))))
    await eventually(lambda: alpha.engine.queued == 1 or queued.done(), "the second request is queued")
    drain_running = asyncio.create_task(drain(running))
    await asyncio.wait_for(kronk.close(), 30)
    for events in (await asyncio.wait_for(queued, 30), await asyncio.wait_for(drain_running, 30)):
        assert isinstance(events[-1], Finish) and events[-1].reason in ("cancelled", "length"), events[-1]
    assert alpha.model.closed


async def test_a_stream_nobody_reads_keeps_its_model_until_it_ends(make_kronk: MakeKronk,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "FREE_GRACE_SECONDS", 0.05)
    kronk = await make_kronk()
    stream = kronk.chat_stream(long_chat("alpha", tokens=400))
    await anext(stream)
    alpha = kronk.pool.loaded("alpha")
    assert alpha is not None
    # close() cannot wait for a consumer that is not reading: it returns after the grace period
    await asyncio.wait_for(kronk.close(), 30)
    assert not kronk.ps() and not alpha.model.closed and alpha.engine.ctx.closed
    events = await drain(stream)
    assert isinstance(events[-1], Finish) and events[-1].reason in ("cancelled", "length")
    assert alpha.model.closed  # freed by the stream as it let go


# Runs in a child process: before the fix, the model was freed while the request's worker
# thread was tokenizing its prompt, and the process died (SIGSEGV / std::out_of_range abort).
_CLOSE_DURING_PROMPT = textwrap.dedent('''
    import asyncio, sys
    from pathlib import Path
    from kronk.errors import KronkError
    from kronk.sdk import AsyncKronk, ChatRequest, ModelSettings, PoolSettings
    from kronk.sdk.pool import PathResolution

    async def main() -> None:
        settings = PoolSettings(model_defaults=ModelSettings(ctx_size=512, slots=1, threads=1,
                                                             batch_size=512, ubatch_size=512))
        kronk = AsyncKronk(settings, resolver=lambda m: PathResolution(id=m, path=Path(sys.argv[1])))
        await kronk.start()
        await kronk.load("alpha")
        alpha = kronk.pool.loaded("alpha")
        text = "hello world the cat " * 150_000  # about 3 MB: tokenizing it takes a while
        chat = asyncio.create_task(kronk.chat(ChatRequest(messages=[{"role": "user", "content": text}],
                                                          model="alpha", max_tokens=4)))
        while alpha.active == 0:
            await asyncio.sleep(0)
        await kronk.close()
        try:
            await chat
            print("outcome: answered")
        except KronkError as exc:
            print("outcome:", type(exc).__name__)
        print("freed:", alpha.model.closed)

    asyncio.run(main())
''')


def test_closing_the_sdk_while_a_request_builds_its_prompt_does_not_crash(lib_dir: Path,
                                                                           tiny: dict[str, Path]) -> None:
    result = subprocess.run([sys.executable, "-c", _CLOSE_DURING_PROMPT, str(tiny["chat"])],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    lines = result.stdout.splitlines()
    # the prompt is far longer than the context, so a request that got that far is refused
    assert lines[0] in ("outcome: ContextOverflowError", "outcome: ShuttingDownError", "outcome: BusyError"), lines
    assert lines[1] == "freed: True"


# A request cancelled (its client gone) while a worker thread tokenizes its prompt: the
# coroutine leaves pool.use() at once, the thread goes on using the model, and closing the
# pool frees the model under it. AsyncKronk should run such work through LoadedModel.to_thread.
_CANCEL_DURING_PROMPT = textwrap.dedent('''
    import asyncio, sys, threading
    from pathlib import Path
    from kronk.sdk import AsyncKronk, ChatRequest, ModelSettings, PoolSettings
    from kronk.sdk import client
    from kronk.sdk.pool import PathResolution

    tokenizing = threading.Event()
    real = client.prompt_tokens

    def prompt_tokens(vocab, prompt):
        tokenizing.set()
        return real(vocab, prompt)

    client.prompt_tokens = prompt_tokens

    async def main() -> None:
        settings = PoolSettings(model_defaults=ModelSettings(ctx_size=512, slots=1, threads=1,
                                                             batch_size=512, ubatch_size=512))
        kronk = AsyncKronk(settings, resolver=lambda m: PathResolution(id=m, path=Path(sys.argv[1])))
        await kronk.start()
        await kronk.load("alpha")
        text = "hello world the cat " * 150_000  # about 3 MB: tokenizing it takes a while
        chat = asyncio.create_task(kronk.chat(ChatRequest(messages=[{"role": "user", "content": text}],
                                                          model="alpha", max_tokens=4)))
        await asyncio.to_thread(tokenizing.wait, 60)
        chat.cancel()
        await asyncio.gather(chat, return_exceptions=True)
        await kronk.close()
        await asyncio.sleep(2)  # the tokenizing thread ends meanwhile
        print("survived")

    asyncio.run(main())
''')


def test_closing_the_sdk_after_a_request_is_cancelled_mid_prompt_does_not_crash(lib_dir: Path,
                                                                                 tiny: dict[str, Path]) -> None:
    result = subprocess.run([sys.executable, "-c", _CANCEL_DURING_PROMPT, str(tiny["chat"])],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "survived", \
        f"exit {result.returncode}\n{result.stderr[-2000:]}"


async def test_native_work_holds_its_model_past_a_cancelled_caller(make_kronk: MakeKronk) -> None:
    kronk = await make_kronk()
    alpha = await kronk.pool.get("alpha")
    entered, release = threading.Event(), threading.Event()

    def tokenize() -> list[int]:  # e.g. a long prompt's tokenization in a worker thread
        entered.set()
        release.wait(30)
        return alpha.model.vocab.tokenize("hello world")

    work = asyncio.create_task(alpha.to_thread(tokenize))
    assert await asyncio.to_thread(entered.wait, 30)
    work.cancel()  # the client went away; the thread cannot be stopped
    with pytest.raises(asyncio.CancelledError):
        await work
    assert alpha.active == 1
    closing = asyncio.create_task(kronk.close())
    await eventually(lambda: alpha.engine.ctx.closed, "the engine has stopped")
    assert not closing.done() and not alpha.model.closed  # the model outlives the thread's use of it
    release.set()
    await asyncio.wait_for(closing, 30)
    assert alpha.model.closed and alpha.active == 0


async def test_a_closed_sdk_unloads_an_idle_model_at_once(lib_dir: Path, resolver: Any) -> None:
    from tests.sdk.conftest import small_settings

    kronk = AsyncKronk(small_settings(), resolver=resolver)
    async with kronk:
        await kronk.chat(long_chat("alpha", tokens=2))
        alpha = kronk.pool.loaded("alpha")
    assert alpha is not None and alpha.model.closed
