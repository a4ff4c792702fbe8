"""What the management API works on: the store, the catalog, the libs and the model pool.

The server builds one `ManagementContext` (often just `ManagementContext(pool=...)`;
everything else defaults to `$KRONK_HOME`) and hands it to `create_management_app`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kronk.manage.service import ModelService
from kronk.models.catalog import Catalog
from kronk.models.store import ModelStore
from kronk.sdk.requests import LoadedModelStatus


@runtime_checkable
class PoolView(Protocol):
    """The part of the engine's model pool the management API needs."""

    def ps(self) -> list[LoadedModelStatus]: ...

    async def unload(self, model_id: str) -> bool: ...


class LibsView(Protocol):
    """The part of `kronk.manage.libs.LibsManager` the management API needs."""

    def list_installs(self) -> list[Any]: ...

    def install(self, version: str | int | None = None, source: str | None = None, *,
                with_tools: bool = False, upgrade: bool = False, progress: Any = None) -> Any: ...


@dataclass
class ManagementContext:
    """Dependencies of the management sub-application (defaults: `$KRONK_HOME`, shipped catalog)."""

    store: ModelStore | None = None
    catalog: Catalog | None = None
    libs: LibsView | None = None
    pool: PoolView | None = None
    service: ModelService = field(init=False)

    def __post_init__(self) -> None:
        if self.catalog is None:
            self.catalog = self.store.catalog if self.store is not None and self.store.catalog else Catalog.load()
        if self.store is None:
            self.store = ModelStore(catalog=self.catalog)
        self.service = ModelService(self.store, self.catalog)

    def libs_manager(self) -> LibsView:
        """The libs manager, created on first use (its import is only paid when needed)."""
        if self.libs is None:
            from kronk.manage.libs import LibsManager

            self.libs = LibsManager()
        return self.libs
