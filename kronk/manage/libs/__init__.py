"""Install the llama.cpp shared libraries Kronk runs on (`kronk libs`).

    from kronk.manage.libs import LibsManager
    manager = LibsManager()
    record = manager.install(progress=print)     # pinned build for this machine
    manager.list_installs(); manager.current(); manager.remove(record.platform)
"""

from __future__ import annotations

from kronk.manage.libs.assets import Combination, combinations
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage
from kronk.manage.libs.install import InstallRecord, read_record
from kronk.manage.libs.manager import LibsManager
from kronk.manage.libs.pin import Pin, load_pin, parse_build
from kronk.manage.libs.platform import ARCHES, OSES, PROCESSORS, Platform, detect
from kronk.manage.libs.sources import AUTO_ORDER, SOURCES

__all__ = [
    "ARCHES",
    "AUTO_ORDER",
    "OSES",
    "PROCESSORS",
    "SOURCES",
    "Combination",
    "InstallRecord",
    "LibsManager",
    "Pin",
    "Platform",
    "ProgressCallback",
    "ProgressEvent",
    "Stage",
    "combinations",
    "detect",
    "load_pin",
    "parse_build",
    "read_record",
]
