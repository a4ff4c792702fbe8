"""The CLI's one SSE decoder: fields, comments, multi-line data, events without a final blank line."""

from __future__ import annotations

from kronk.cli.sse import ServerEvent, SSEDecoder


def _decode(lines: list[str]) -> list[ServerEvent]:
    decoder = SSEDecoder()
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    last = decoder.flush()
    return events + ([last] if last is not None else [])


def test_events_with_names_comments_and_multiline_data() -> None:
    events = _decode([": keep-alive", "event: progress", 'data: {"bytes": 1}', "", "data: line one\r",
                      "data:line two", "", "data: [DONE]", ""])
    assert events == [ServerEvent("progress", {"bytes": 1}), ServerEvent("message", "line one\nline two"),
                      ServerEvent("message", "[DONE]")]


def test_a_stream_that_ends_without_a_blank_line_still_yields_its_last_event() -> None:
    assert _decode(["event: done", 'data: {"ok": true}']) == [ServerEvent("done", {"ok": True})]


def test_blank_lines_alone_make_no_events() -> None:
    assert _decode(["", "", ": comment", ""]) == []
