// Running models: what is in memory now, slot by slot, refreshed every two seconds.
// Cards are built once per model and updated in place, so focus (e.g. on Unload) survives a refresh.
import { facts, meter, message, number, poll, table, useOpsCss } from "../lib/ops.js";

const REFRESH_MS = 2000;

function duration(ctx, seconds) {
  return seconds === null || seconds === undefined ? "—" : ctx.formatDuration(seconds);
}

function slotRows(model) {
  return model.slots.map((slot) => [
    String(slot.seq_id),
    slot.state,
    number(slot.n_cached, 0),
    slot.state === "idle" ? "—" : number(slot.n_prompt, 0),
    slot.state === "idle" ? "—" : number(slot.n_generated, 0),
    slot.state === "generating" ? number(slot.tokens_per_second) : "—",
  ]);
}

function card(ctx, model, onUnload) {
  const summary = ctx.h("div");
  const usage = ctx.h("div", { class: "ops-grid-2" });
  const slots = ctx.h("div", { class: "ops-scroll" });
  const button = ctx.h("button", { type: "button", class: "danger", onclick: () => onUnload(model.id, button) },
    "Unload");
  button.setAttribute("aria-label", `Unload ${model.id}`);
  const root = ctx.h(
    "article",
    { class: "ops-card", "data-model": model.id },
    ctx.h("header", {}, ctx.h("h3", {}, model.id), button),
    summary,
    usage,
    slots,
  );
  const update = (m) => {
    summary.replaceChildren(facts(ctx, [
      ["Kind", m.kind],
      ["Size", ctx.formatBytes(m.size_bytes)],
      ["Context per slot", `${number(m.context_size, 0)} tokens`],
      ["Streams", String(m.active_streams)],
      ["Queued", String(m.queued)],
      ["Idle", m.active_streams ? "busy" : duration(ctx, m.idle_seconds)],
      ["Unloads in", m.expires_in_seconds === null ? "—" : duration(ctx, m.expires_in_seconds)],
      ["Tokens (prompt / generated)", `${number(m.prompt_tokens_total, 0)} / ${number(m.completion_tokens_total, 0)}`],
    ]));
    usage.replaceChildren(
      ctx.h("div", {}, ctx.h("strong", {}, "KV cache"),
        meter(ctx, m.kv_cells_used, m.kv_cells_total,
          `${number(m.kv_cells_used, 0)} / ${number(m.kv_cells_total, 0)} cells`, `KV cache use of ${m.id}`)),
      ctx.h("div", {}, ctx.h("strong", {}, "RAM prompt cache"),
        meter(ctx, m.prompt_cache_bytes, m.prompt_cache_budget_bytes,
          `${ctx.formatBytes(m.prompt_cache_bytes)} / ${ctx.formatBytes(m.prompt_cache_budget_bytes)} · ` +
          `${m.prompt_cache_entries} entries · ${m.prompt_cache_hits} hits`, `Prompt cache use of ${m.id}`)),
    );
    const slotTable = table(ctx, ["Slot", "State", "Sequence length", "Prompt", "Generated", "Tokens/s"],
      slotRows(m), { caption: "Slots" });
    for (const [i, slot] of m.slots.entries()) {
      const cell = slotTable.tBodies[0].rows[i]?.cells[1];
      if (cell) cell.className = `ops-state-${slot.state}`;
    }
    slots.replaceChildren(slotTable);
  };
  update(model);
  return { root, update };
}

export default {
  async mount(el, ctx) {
    useOpsCss();
    const status = ctx.h("p", { class: "ops-muted", "aria-live": "polite" }, "Loading…");
    const list = ctx.h("div", { class: "ops-page" });
    const empty = ctx.h("p", { class: "ops-empty" },
      "No models loaded. A model loads on its first request — try the Chat page, or load one from Models.");
    el.replaceChildren(ctx.h("section", { class: "ops-page" },
      ctx.h("div", { class: "ops-toolbar" }, ctx.h("h2", {}, "Running models"), status), list));
    const cards = new Map();

    const unload = async (id, button) => {
      if (!(await ctx.confirm(`Unload ${id}? Requests it is serving now end with "cancelled".`))) return;
      button.disabled = true;
      try {
        const result = await ctx.api("POST", "/v1/kronk/models/unload", { id });
        ctx.toast(result.unloaded ? `Unloaded ${id}` : `${id} was not loaded`, result.unloaded ? "ok" : "info");
        await refresh();
      } catch (error) {
        ctx.toast(message(error), "error");
      } finally {
        button.disabled = false;
      }
    };

    const refresh = async () => {
      let data;
      try {
        data = await ctx.api("GET", "/v1/kronk/running");
      } catch (error) {
        status.textContent = `Could not refresh: ${message(error)}`;
        status.classList.add("ops-danger");
        return;
      }
      status.classList.remove("ops-danger");
      status.textContent = `Updated ${new Date(data.at * 1000).toLocaleTimeString()} · refreshes every 2 s`;
      const seen = new Set();
      for (const model of data.data) {
        seen.add(model.id);
        let entry = cards.get(model.id);
        if (entry) entry.update(model);
        else {
          entry = card(ctx, model, unload);
          cards.set(model.id, entry);
        }
      }
      for (const [id, entry] of cards) {
        if (!seen.has(id)) {
          entry.root.remove();
          cards.delete(id);
        }
      }
      const wanted = data.data.length ? data.data.map((m) => cards.get(m.id).root) : [empty];
      if (wanted.some((node, i) => list.children[i] !== node) || list.children.length !== wanted.length) {
        list.replaceChildren(...wanted);
      }
    };

    const stop = poll(refresh, REFRESH_MS);
    return () => stop();
  },
};
