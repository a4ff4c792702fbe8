// Catalog: browse the curated models (/v1/kronk/catalog), filter, show one, pull with progress, update.
import { pullPanel } from "../lib/pulls.js";

const enc = encodeURIComponent;

export default {
  async mount(el, ctx) {
    const { h } = ctx;
    let alive = true;
    let entries = [];
    let origin = "";
    const pulls = pullPanel(ctx, { onDone: () => alive && refresh() });
    const category = h("select", { id: "catalog-category", onchange: () => render() }, h("option", { value: "" }, "All"));
    const capability = h("select", { id: "catalog-capability", onchange: () => render() }, h("option", { value: "" }, "Any"));
    const search = h("input", { type: "search", id: "catalog-search", placeholder: "Filter by name", oninput: () => render() });
    const listBox = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
    const detail = h("div", {});
    const originLine = h("p", { class: "small muted" });

    const updateButton = h("button", { type: "button", class: "ghost", id: "catalog-update", onclick: async () => {
      updateButton.disabled = true;
      try {
        const result = await ctx.api("POST", "/v1/kronk/catalog/update", {});
        ctx.toast(`catalog updated: ${result.models} models`, "ok");
        await refresh();
      } catch (e) {
        ctx.toast(`update failed: ${e.status ? `${e.status}: ` : ""}${e.message}`, "error");
      } finally {
        updateButton.disabled = false;
      }
    } }, "Update catalog");

    function pull(entry) {
      pulls.start(entry.id, `/v1/kronk/catalog/${entry.id.split("/").map(enc).join("/")}/pull`, {});
    }

    function options(select, values, label) {
      const current = select.value;
      select.replaceChildren(h("option", { value: "" }, label), ...values.map((v) => h("option", { value: v }, v)));
      if (values.includes(current)) select.value = current;
    }

    function render() {
      const wantCategory = category.value;
      const wantCapability = capability.value;
      const text = search.value.trim().toLowerCase();
      const shown = entries.filter((e) => (!wantCategory || e.category === wantCategory)
        && (!wantCapability || (e.capabilities || []).includes(wantCapability))
        && (!text || `${e.id} ${e.name ?? ""} ${e.alias ?? ""} ${e.description ?? ""}`.toLowerCase().includes(text)));
      if (!shown.length) {
        listBox.replaceChildren(h("div", { class: "empty" }, entries.length ? "Nothing matches these filters."
          : "The catalog is empty — update it."));
        return;
      }
      listBox.replaceChildren(h("table", { id: "catalog-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Category"), h("th", {}, "Capabilities"),
          h("th", { class: "num" }, "Size"), h("th", {}, ""))),
        h("tbody", {}, shown.map((e) => h("tr", { dataset: { entry: e.id } },
          h("td", {}, h("a", { href: `#/catalog/${enc(e.id)}` }, e.name || e.id),
            h("div", { class: "small muted" }, e.description || e.id)),
          h("td", {}, e.category),
          h("td", {}, (e.capabilities || []).map((c) => h("span", { class: "tag" }, c))),
          h("td", { class: "num" }, ctx.formatBytes(e.size)),
          h("td", {}, e.installed ? h("span", { class: "ok small" }, "installed")
            : h("button", { type: "button", class: "small", "aria-label": `Pull ${e.id}`, onclick: () => pull(e) }, "Pull")))))));
    }

    async function refresh() {
      try {
        const data = await ctx.api("GET", "/v1/kronk/catalog");
        if (!alive) return;
        entries = data.data || [];
        origin = data.origin || "";
        originLine.textContent = `${entries.length} models · catalog: ${origin}`;
        options(category, [...new Set(entries.map((e) => e.category))].sort(), "All");
        options(capability, [...new Set(entries.flatMap((e) => e.capabilities || []))].sort(), "Any");
        render();
      } catch (e) {
        if (alive) listBox.replaceChildren(h("p", { class: "error" }, `${e.status || ""} ${e.message}`));
      }
    }

    async function showOne(id) {
      let e;
      try {
        e = await ctx.api("GET", `/v1/kronk/catalog/${id.split("/").map(enc).join("/")}`);
      } catch (err) {
        detail.replaceChildren(h("section", { class: "card" }, h("p", { class: "error" }, `${err.status}: ${err.message}`),
          h("a", { href: "#/catalog" }, "Back to the catalog")));
        return;
      }
      detail.replaceChildren(h("section", { class: "card stack", id: "catalog-detail" },
        h("div", { class: "row" }, h("h2", { class: "grow" }, e.name || e.id), h("a", { href: "#/catalog" }, "All models"),
          e.installed ? h("a", { href: `#/models/${enc(e.id)}` }, "installed — show") :
            h("button", { type: "button", onclick: () => pull(e) }, "Pull")),
        h("p", {}, e.description || ""),
        h("p", { class: "small" }, `id ${e.id}${e.alias ? ` · alias ${e.alias}` : ""} · ${e.category} · ${ctx.formatBytes(e.size)}`),
        h("div", {}, (e.capabilities || []).map((c) => h("span", { class: "tag" }, c))),
        h("h2", {}, "Files"), h("ul", {}, (e.files || []).map((f) => h("li", {}, `${f.name} (${ctx.formatBytes(f.size)})`)),
          e.projector ? h("li", {}, `projector ${e.projector.name} (${ctx.formatBytes(e.projector.size)})`) : null),
        h("h2", {}, "Sources"), h("pre", {}, JSON.stringify(e.sources, null, 2)),
        h("h2", {}, "Settings"), h("pre", {}, JSON.stringify(e.config, null, 2))));
    }

    if (ctx.path) {
      el.append(h("h1", {}, "Catalog"), pulls.el, detail);
      await showOne(ctx.path);
    } else {
      el.append(h("div", { class: "row" }, h("h1", { class: "grow" }, "Catalog"), updateButton), originLine,
        h("div", { class: "row card" },
          h("label", {}, "Category", category), h("label", {}, "Capability", capability),
          h("label", { class: "grow" }, "Search", search)),
        pulls.el, h("section", { class: "card" }, listBox));
      await refresh();
    }
    pulls.resume();
    return () => {
      alive = false;
      pulls.stop();
    };
  },
};
