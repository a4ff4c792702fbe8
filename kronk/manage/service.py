"""Model and catalog operations as JSON-ready dicts: one implementation, two front ends.

The management API calls these (in a thread) and returns the dicts as JSON; the CLI
calls them directly with `--local`, and otherwise gets the same dicts from the API,
so both paths print identical output.
"""

from __future__ import annotations

from typing import Any

from kronk.manage.catalog_update import update_catalog
from kronk.manage.progress import TransferCallback
from kronk.manage.pull import PullManager, PullResult
from kronk.models.catalog import Catalog, CatalogEntry
from kronk.models.store import ModelStore, StoredModel


class ModelService:
    """The store, the catalog and the puller behind one JSON-shaped interface."""

    def __init__(self, store: ModelStore, catalog: Catalog, pulls: PullManager | None = None) -> None:
        self.store = store
        self.catalog = catalog
        store.catalog = catalog
        self.pulls = pulls or PullManager(store, catalog)

    @classmethod
    def default(cls) -> ModelService:
        """Over `$KRONK_HOME/models` and the shipped (plus updated) catalog."""
        catalog = Catalog.load()
        return cls(ModelStore(catalog=catalog), catalog)

    # --- models ------------------------------------------------------------

    def describe(self, model: StoredModel) -> dict[str, Any]:
        data = model.describe(self.store.root)
        entry = self.catalog.find(model.id)
        own = entry is not None and entry.id == model.id
        data["catalog"] = entry.id if entry is not None and own else None
        data["config"] = {**(entry.model_config() if entry is not None and own else {}), **(model.config or {})}
        return data

    def list_models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.describe(m) for m in self.store.list()]}

    def show_model(self, model: str) -> dict[str, Any]:
        return self.describe(self.store.get(model))

    def remove_model(self, model: str) -> dict[str, Any]:
        removed = self.store.remove(model)
        return {"id": removed.id, "object": "model", "deleted": True, "size": removed.size}

    def rebuild_index(self) -> dict[str, Any]:
        result = self.store.rebuild_index()
        return {"object": "list", "data": [self.describe(m) for m in result.models], "problems": result.problems}

    def pull(self, spec: str, *, projector: str | None = None, force: bool = False,
             progress: TransferCallback | None = None, peer: str | None = None,
             peer_token: str | None = None) -> dict[str, Any]:
        """Pull from the sources `spec` names, or with `peer` from that Kronk server's store."""
        if peer is not None:
            return self._pull_result(self.pull_from_peer(spec, peer, peer_token, force=force, progress=progress))
        return self._pull_result(self.pulls.pull(spec, projector=projector, force=force, progress=progress))

    def pull_from_peer(self, model: str, peer: str, token: str | None, *, force: bool = False,
                       progress: TransferCallback | None = None) -> PullResult:
        """Read the peer's manifest (errors surface before any progress), then pull its files."""
        from kronk.manage.peer_client import PeerClient, peer_plan

        client = PeerClient(peer, token, session=self.pulls.downloader.session)
        manifest = client.manifest(model)
        plan = peer_plan(client, manifest)
        return self.pulls.run(manifest.id, [(f"peer {client.base_url}", lambda: plan)], force=force,
                              progress=progress)

    def _pull_result(self, result: PullResult) -> dict[str, Any]:
        return {"status": result.status, "coalesced": result.coalesced, "model": self.describe(result.model)}

    # --- catalog -----------------------------------------------------------

    def describe_entry(self, entry: CatalogEntry) -> dict[str, Any]:
        data = entry.to_dict()
        data["installed"] = self.pulls.installed(entry.id) is not None
        return data

    def catalog_list(self, category: str | None = None) -> dict[str, Any]:
        return {"object": "list", "origin": self.catalog.origin,
                "data": [self.describe_entry(e) for e in self.catalog.entries(category)]}

    def catalog_show(self, model: str) -> dict[str, Any]:
        return self.describe_entry(self.catalog.get(model))

    def catalog_pull(self, model: str, *, force: bool = False,
                     progress: TransferCallback | None = None) -> dict[str, Any]:
        entry = self.catalog.get(model)
        return self.pull(entry.id, force=force, progress=progress)

    def catalog_update(self, url: str | None = None) -> dict[str, Any]:
        source = url or self.pulls.endpoints.catalog_url
        catalog = update_catalog(source, self.pulls.downloader.session)
        self.catalog = catalog
        self.store.catalog = catalog
        self.pulls.catalog = catalog
        return {"object": "catalog", "url": source, "origin": catalog.origin, "models": len(catalog)}
