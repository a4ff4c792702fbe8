"""What the management route modules share: the app key of their context, SSE framing, the libs body.

`api` (models, catalog, libs pulls) and `libs_api` (the browser UI's libs jobs) both mount on the
management sub-application; they import these from here so neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from kronk.manage.context import ManagementContext
from kronk.wire import Int, WireModel, by_json_type

_BUILD = "a build number like b11434"

CONTEXT = web.AppKey("kronk_management_context", ManagementContext)
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _build_number(value: Any, handler: Callable[[Any], Any]) -> int:
    """A llama.cpp build (`b11434`, `"11434"` or 11434) as its number; an error quotes the value sent."""
    try:
        checked = handler(value)
    except ValidationError:
        raise PydanticCustomError("build", f"must be {_BUILD}, got {value!r}".replace("{", "{{").replace(
            "}", "}}")) from None
    return int(checked.removeprefix("b")) if isinstance(checked, str) else int(checked)


class LibsBody(WireModel):
    version: by_json_type(  # type: ignore[valid-type]
        _BUILD,
        string=Annotated[str, Field(pattern=r"^b?0*[1-9][0-9]{0,6}$"), WrapValidator(_build_number)],
        integer=Annotated[Int, Field(ge=1, le=9_999_999), WrapValidator(_build_number)],
    ) | None = None
    """A llama.cpp build number like b11434 (default: the pinned one)."""
    source: Literal["release", "sdist", "source"] | None = None
    """Where the libraries come from (`dir` needs a local folder: CLI only)."""
    with_tools: bool = False


