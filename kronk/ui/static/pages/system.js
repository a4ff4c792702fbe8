// System: llama.cpp's devices and their memory, versions, uptime, and charts of the last minutes
// (tokens/s, time to first token, requests) from the server's in-memory history.
import { facts, lineChart, loadPanel, meter, message, number, poll, table, useOpsCss } from "../lib/ops.js";

const HISTORY_MS = 5000;
const FACTS_MS = 15000;

export default {
  async mount(el, ctx) {
    useOpsCss();
    const about = ctx.h("div", {}, ctx.h("p", { class: "ops-muted" }, "Loading…"));
    const devices = ctx.h("div", { class: "ops-scroll" });
    const charts = ctx.h("div", { class: "ops-grid-2", "aria-live": "off" });
    const minutes = ctx.h("select", { "aria-label": "Chart window" },
      ...[1, 5, 15].map((m) => ctx.h("option", { value: String(m) }, `last ${m} min`)));
    minutes.value = "15";
    const chartNote = ctx.h("p", { class: "ops-muted" });
    el.replaceChildren(ctx.h("section", { class: "ops-page" },
      ctx.h("h2", {}, "System"),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Server"), about),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Devices (llama.cpp)"), devices),
      ctx.h("section", { class: "ops-card" },
        ctx.h("header", {}, ctx.h("h3", {}, "Activity"), minutes), chartNote, charts)));

    let started = null;
    let uptimeCell = null;
    const tickUptime = () => {
      if (started !== null && uptimeCell) uptimeCell.textContent = ctx.formatDuration(Date.now() / 1000 - started);
    };

    const loadFacts = async () => {
      const info = await loadPanel(ctx, about, "/v1/kronk/system");
      if (!info) return;
      started = info.started_at;
      uptimeCell = ctx.h("span", {});
      about.replaceChildren(facts(ctx, [
        ["Kronk", info.version],
        ["llama.cpp", `b${info.llama.build} (llama ${info.llama.llama}, ggml ${info.llama.ggml})`],
        ["Libraries", info.llama.lib_dir],
        ["Uptime", uptimeCell],
        ["Process", `pid ${info.pid} · ${info.process_rss ? ctx.formatBytes(info.process_rss) : "—"} resident`],
        ["Host", `${info.platform} · Python ${info.python} · ${info.cpu_count ?? "?"} CPUs · ` +
          `${info.memory_total ? ctx.formatBytes(info.memory_total) : "?"} RAM`],
        ["Security", info.security],
        ["Default model", info.default_model || "none"],
        ["CPU features", info.features],
      ]));
      tickUptime();
      devices.replaceChildren(table(ctx, ["#", "Device", "Type", "Memory (free of total)"], info.devices.map((d) => [
        String(d.index),
        `${d.name} — ${d.description}`,
        d.type.toUpperCase(),
        d.memory_total > 0
          ? meter(ctx, d.memory_total - d.memory_free, d.memory_total,
            `${ctx.formatBytes(d.memory_free)} free of ${ctx.formatBytes(d.memory_total)}`,
            `Memory in use on ${d.name}`)
          : "—",
      ]), { empty: "llama.cpp reports no devices." }));
    };

    const loadHistory = async () => {
      let history;
      try {
        history = await ctx.api("GET", `/v1/kronk/system/history?minutes=${encodeURIComponent(minutes.value)}`);
      } catch (error) {
        chartNote.textContent = `Could not load the history: ${message(error)}`;
        chartNote.classList.add("ops-danger");
        return;
      }
      chartNote.classList.remove("ops-danger");
      const data = history.data;
      const total = data.reduce((sum, s) => sum + s.requests, 0);
      chartNote.textContent = `${data.length} samples, one every ${number(history.interval_seconds, 0)} s · ` +
        `${total} requests in the window`;
      const series = (field, name, cls) => ({ name, cls, points: data.map((s) => [s.t, s[field]]) });
      charts.replaceChildren(
        lineChart(ctx, { title: "Tokens per second", unit: "tok/s",
          series: [series("completion_tokens_per_second", "generated"),
            series("prompt_tokens_per_second", "prompt", "alt")] }),
        lineChart(ctx, { title: "Time to first token (mean)", unit: "ms", series: [series("ttft_ms", "TTFT")] }),
        lineChart(ctx, { title: "Requests per interval", unit: "requests",
          series: [series("requests", "requests"), series("errors", "errors", "alt")] }),
        lineChart(ctx, { title: "Slots busy and queue", unit: "",
          series: [series("active_slots", "busy slots"), series("queued", "queued", "alt")] }),
      );
    };

    minutes.addEventListener("change", () => loadHistory());
    const stopFacts = poll(loadFacts, FACTS_MS);
    const stopHistory = poll(loadHistory, HISTORY_MS);
    const uptimeTimer = setInterval(tickUptime, 1000);
    return () => {
      stopFacts();
      stopHistory();
      clearInterval(uptimeTimer);
    };
  },
};
