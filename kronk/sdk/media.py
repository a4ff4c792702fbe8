"""Image and audio message parts → the file bytes libmtmd decodes.

Accepted: OpenAI `image_url` / `input_image` parts with a `data:` URL, `input_audio` parts
(base64 `data` + `format`), and Anthropic `image` blocks with a base64 source. Remote URLs
are refused rather than fetched: a server that downloads whatever URL a prompt names can be
pointed at internal addresses, and a slow host would hold a slot hostage.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from typing import Any

from kronk.errors import InvalidRequestError

MAX_MEDIA_BYTES = 32 * 1024 * 1024
"""Largest decoded image or audio file accepted in one part."""


def media_bytes(part: dict[str, Any], where: str = "messages") -> bytes:
    """The decoded file of one media part; InvalidRequestError names what is wrong."""
    kind = part.get("type")
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return _from_url(url, where)
    if kind in ("input_audio", "audio"):
        audio = part.get("input_audio") if kind == "input_audio" else part.get("audio", part.get("input_audio"))
        data = audio.get("data") if isinstance(audio, dict) else None
        return _from_base64(data, where, "input_audio.data")
    if kind == "image":
        source = part.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":
            return _from_base64(source.get("data"), where, "source.data")
        if isinstance(source, dict) and source.get("type") == "url":
            return _from_url(source.get("url"), where)
        raise InvalidRequestError(f"{where}: an image block needs a base64 source", param=where)
    raise InvalidRequestError(f"{where}: unsupported media part {kind!r}", param=where)


def _from_url(url: Any, where: str) -> bytes:
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}: the image needs a url", param=where)
    if not url.startswith("data:"):
        raise InvalidRequestError(
            f"{where}: remote media URLs are not fetched; send the file inline as a data: URL (base64)", param=where
        )
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InvalidRequestError(f"{where}: malformed data: URL (no comma)", param=where)
    if header.endswith(";base64"):
        return _from_base64(payload, where, "url")
    data = urllib.parse.unquote_to_bytes(payload)
    return _checked(data, where)


def _from_base64(data: Any, where: str, field: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise InvalidRequestError(f"{where}: {field} must be a non-empty base64 string", param=where)
    if len(data) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise InvalidRequestError(f"{where}: media larger than {MAX_MEDIA_BYTES // (1024 * 1024)} MiB", param=where)
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{where}: {field} is not valid base64", param=where) from None
    return _checked(decoded, where)


def _checked(data: bytes, where: str) -> bytes:
    if not data:
        raise InvalidRequestError(f"{where}: the media file is empty", param=where)
    if len(data) > MAX_MEDIA_BYTES:
        raise InvalidRequestError(f"{where}: media larger than {MAX_MEDIA_BYTES // (1024 * 1024)} MiB", param=where)
    return data
