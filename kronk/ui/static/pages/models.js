// Models: the local store (/v1/kronk/models), one model's GGUF details, pull by spec, remove, re-index.
import { pullPanel } from "../lib/pulls.js";

const enc = encodeURIComponent;

function modelPath(id) {
  return `/v1/kronk/models/${id.split("/").map(enc).join("/")}`;
}

export default {
  async mount(el, ctx) {
    const { h } = ctx;
    let alive = true;
    const tableBox = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
    const detail = h("div", {});
    const pulls = pullPanel(ctx, { onDone: () => alive && refresh() });

    const spec = h("input", { id: "pull-spec", name: "spec", required: true, class: "grow",
      placeholder: "catalog id, org/repo:file.gguf or https://…/model.gguf", autocomplete: "off" });
    const projector = h("input", { id: "pull-projector", name: "projector", placeholder: "projector (optional)",
      "aria-label": "Projector (optional)",
      autocomplete: "off" });
    const pullForm = h("form", { class: "card stack", "aria-label": "Pull a model", onsubmit: (e) => {
      e.preventDefault();
      const model = spec.value.trim();
      if (!model) return;
      const body = { model };
      if (projector.value.trim()) body.projector = projector.value.trim();
      pulls.start(model, "/v1/kronk/models/pull", body);
      spec.value = "";
      projector.value = "";
    } },
    h("h2", {}, "Pull a model"),
    h("div", { class: "row" }, h("label", { for: "pull-spec", class: "grow" }, "Model spec", spec)),
    h("div", { class: "row" }, projector, h("button", { type: "submit", id: "pull-button" }, "Pull")));

    const reindex = h("button", { type: "button", class: "ghost", onclick: async () => {
      reindex.disabled = true;
      try {
        const result = await ctx.api("POST", "/v1/kronk/models/index");
        const problems = result.problems || [];
        ctx.toast(`index rebuilt: ${result.data.length} models${problems.length ? `, ${problems.length} problems` : ""}`,
          problems.length ? "error" : "ok");
        render(result.data);
      } catch (e) {
        ctx.toast(`re-index failed: ${e.message}`, "error");
      } finally {
        reindex.disabled = false;
      }
    } }, "Re-index");

    function render(models) {
      if (!models.length) {
        tableBox.replaceChildren(h("div", { class: "empty" }, "No models yet — pull one above, or from the ",
          h("a", { href: "#/catalog" }, "catalog"), "."));
        return;
      }
      tableBox.replaceChildren(h("table", { id: "models-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", { class: "num" }, "Size"), h("th", {}, "Quant"),
          h("th", { class: "num" }, "Context"), h("th", {}, "Capabilities"), h("th", {}, ""))),
        h("tbody", {}, models.map((m) => h("tr", { dataset: { model: m.id } },
          h("td", {}, h("a", { href: `#/models/${enc(m.id)}` }, m.id), m.alias ? h("div", { class: "small muted" }, m.alias) : null),
          h("td", { class: "num" }, ctx.formatBytes(m.size)),
          h("td", {}, m.metadata?.quantization ?? "–"),
          h("td", { class: "num" }, m.metadata?.context_length ?? "–"),
          h("td", {}, (m.capability_names || []).map((c) => h("span", { class: "tag" }, c))),
          h("td", {}, h("button", { type: "button", class: "ghost small", "aria-label": `Remove ${m.id}`,
            onclick: () => remove(m.id) }, "Remove")))))));
    }

    async function remove(id) {
      if (!(await ctx.confirm(`Remove ${id} from the store? Its files are deleted (and it is unloaded).`,
        { confirmLabel: "Remove" }))) return;
      try {
        await ctx.api("DELETE", modelPath(id));
        ctx.toast(`removed ${id}`, "ok");
        if (ctx.path) ctx.navigate("#/models");
        else refresh();
      } catch (e) {
        ctx.toast(`remove failed: ${e.message}`, "error");
      }
    }

    async function refresh() {
      try {
        const list = await ctx.api("GET", "/v1/kronk/models");
        if (alive) render(list.data || []);
      } catch (e) {
        if (alive) tableBox.replaceChildren(h("p", { class: "error" }, `${e.status || ""} ${e.message}`));
      }
    }

    async function showOne(id) {
      detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      let m;
      try {
        m = await ctx.api("GET", modelPath(id));
      } catch (e) {
        detail.replaceChildren(h("section", { class: "card" }, h("p", { class: "error" }, `${e.status}: ${e.message}`),
          h("a", { href: "#/models" }, "Back to the list")));
        return;
      }
      const kv = (obj) => h("table", { class: "kv" }, h("tbody", {}, Object.entries(obj || {}).map(([k, v]) =>
        h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))))));
      const template = m.config?.template;
      detail.replaceChildren(h("section", { class: "card stack", id: "model-detail" },
        h("div", { class: "row" }, h("h2", { class: "grow" }, m.id),
          h("a", { href: "#/models" }, "All models"),
          h("button", { type: "button", class: "danger small", onclick: () => remove(m.id) }, "Remove")),
        h("p", {}, `${ctx.formatBytes(m.size)} · source ${m.source ?? "–"} · added ${m.added_at ? new Date(m.added_at * 1000).toLocaleString() : "–"}`),
        h("div", {}, (m.capability_names || []).map((c) => h("span", { class: "tag" }, c))),
        h("h2", {}, "GGUF metadata"), kv(m.metadata),
        m.projector_metadata ? [h("h2", {}, "Projector"), kv(m.projector_metadata)] : null,
        h("h2", {}, "Files"), h("ul", {}, (m.files || []).map((f) => h("li", {}, `${f.path} (${ctx.formatBytes(f.size)})`))),
        h("h2", {}, "Settings from the catalog and the store"), kv(m.config),
        h("h2", {}, "Chat template"),
        template ? h("pre", {}, typeof template === "string" ? template : JSON.stringify(template, null, 2))
          : h("p", { class: "muted" }, m.metadata?.has_chat_template ? "The template embedded in the GGUF file."
            : "This model has no chat template.")));
    }

    if (ctx.path) {
      el.append(h("h1", {}, "Model"), detail, pulls.el);
      await showOne(ctx.path);
    } else {
      el.append(h("div", { class: "row" }, h("h1", { class: "grow" }, "Models"), reindex), pullForm, pulls.el,
        h("section", { class: "card" }, tableBox));
      await refresh();
    }
    pulls.resume();
    return () => {
      alive = false;
      pulls.stop();
    };
  },
};
