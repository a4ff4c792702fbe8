"""The high-level SDK: `Kronk` (blocking) and `AsyncKronk` (asyncio) over a model pool."""

from kronk.sdk import requests as _requests
from kronk.sdk.client import AsyncKronk
from kronk.sdk.pool import ModelPool
from kronk.sdk.requests import *  # noqa: F403 -- the request and result types, listed once in requests.__all__
from kronk.sdk.settings import ModelSettings, PoolSettings
from kronk.sdk.sync import Kronk

__all__ = ["AsyncKronk", "Kronk", "ModelPool", "ModelSettings", "PoolSettings", *_requests.__all__]
