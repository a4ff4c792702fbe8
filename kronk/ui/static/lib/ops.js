// Helpers shared by the operations pages (running, libs, security, system):
// their stylesheet, polling that pauses in hidden tabs, tables, meters and SVG line charts.
// Everything from the server is set as text (textContent / text nodes), never as HTML.

const SVG = "http://www.w3.org/2000/svg";

/** Load pages' ops.css once (next to this module, so it shares the versioned asset path). */
export function useOpsCss() {
  const href = new URL("./ops.css", import.meta.url).href;
  if (!document.querySelector(`link[data-ops-css]`)) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.dataset.opsCss = "1";
    document.head.append(link);
  }
}

/** Call `fn` now and every `ms` while the tab is visible; returns a stop function. */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  let running = false;
  const tick = async () => {
    if (stopped || running) return;
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  const onVisible = () => {
    if (!document.hidden && !stopped) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener("visibilitychange", onVisible);
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

/** A table: `columns` are header strings, `rows` arrays of strings or nodes. */
export function table(ctx, columns, rows, { caption, empty } = {}) {
  const body = rows.length
    ? rows.map((cells) => ctx.h("tr", {}, ...cells.map((cell) => ctx.h("td", {}, cell ?? ""))))
    : [ctx.h("tr", {}, ctx.h("td", { colspan: String(columns.length), class: "ops-empty" }, empty || "Nothing yet."))];
  return ctx.h(
    "table",
    { class: "ops-table" },
    caption ? ctx.h("caption", {}, caption) : "",
    ctx.h("thead", {}, ctx.h("tr", {}, ...columns.map((c) => ctx.h("th", { scope: "col" }, c)))),
    ctx.h("tbody", {}, ...body),
  );
}

/** A labelled bar for `used` of `total`, with the text `label` beside it. */
export function meter(ctx, used, total, label, name) {
  const ratio = total > 0 ? Math.min(1, used / total) : 0;
  return ctx.h(
    "div",
    { class: "ops-meter" },
    ctx.h("progress", { max: "1", value: String(ratio), "aria-label": name || label }),
    ctx.h("span", {}, label),
  );
}

/** A definition list from [term, value] pairs. */
export function facts(ctx, pairs) {
  return ctx.h("dl", { class: "ops-facts" },
    ...pairs.flatMap(([term, value]) => [ctx.h("dt", {}, term), ctx.h("dd", {}, value ?? "—")]));
}

export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** The message of an ApiError (or any error) for a toast or an inline notice. */
export function message(error) {
  return (error && error.message) || String(error);
}

/** An inline alert saying what went wrong, for a panel whose data could not be read. */
export function errorNote(ctx, error) {
  return ctx.h("p", { class: "ops-danger", role: "alert" }, message(error));
}

/** GET `path` for the panel `box`: the answer, or null once the error is shown in `box`. */
export async function loadPanel(ctx, box, path) {
  try {
    return await ctx.api("GET", path);
  } catch (error) {
    box.replaceChildren(errorNote(ctx, error));
    return null;
  }
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/**
 * An SVG line chart of `series` ([{name, points: [[t, v|null], ...], cls}]) over time.
 * `t` is unix seconds; gaps (null) break the line. Returns a <figure>.
 */
export function lineChart(ctx, { title, unit, series, width = 560, height = 180 }) {
  const pad = { l: 48, r: 12, t: 10, b: 24 };
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const figure = ctx.h("figure", { class: "ops-chart" }, ctx.h("figcaption", {}, title));
  if (all.length === 0) {
    figure.append(ctx.h("p", { class: "ops-empty" }, "No samples yet — the server records one every few seconds."));
    return figure;
  }
  const ts = series.flatMap((s) => s.points.map((p) => p[0]));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts, Math.min(Date.now() / 1000, t0 + 3600), t0 + 1); // the right edge is now
  const vmax = niceMax(Math.max(...all.map((p) => p[1]), 0));
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "ops-chart-svg" });
  const label = svg("title");
  const last = series.map((s) => {
    const values = s.points.filter((p) => p[1] !== null);
    return `${s.name} ${values.length ? number(values[values.length - 1][1]) : "—"} ${unit}`;
  });
  label.textContent = `${title}: latest ${last.join(", ")}`;
  root.append(label);
  for (const frac of [0, 0.5, 1]) {
    const v = vmax * frac;
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: "ops-grid" }));
    const text = svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end", class: "ops-axis" });
    text.textContent = number(v, v < 10 ? 1 : 0);
    root.append(text);
  }
  const minutes = (t1 - t0) / 60;
  const ago = svg("text", { x: pad.l, y: height - 6, class: "ops-axis" });
  ago.textContent = minutes >= 1 ? `${number(minutes, 0)} min ago` : `${number(t1 - t0, 0)} s ago`;
  const now = svg("text", { x: width - pad.r, y: height - 6, "text-anchor": "end", class: "ops-axis" });
  now.textContent = "now";
  root.append(ago, now);
  for (const s of series) {
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) root.append(svg("path", { d, class: `ops-line ${s.cls || ""}` }));
    for (const [t, v] of s.points) {
      if (v !== null && v !== undefined && s.points.length < 3) {
        root.append(svg("circle", { cx: x(t), cy: y(v), r: 3, class: `ops-dot ${s.cls || ""}` }));
      }
    }
  }
  figure.append(root);
  if (series.length > 1) {
    figure.append(ctx.h("ul", { class: "ops-legend" },
      ...series.map((s) => ctx.h("li", { class: s.cls || "" }, s.name))));
  }
  return figure;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * step) return m * step;
  return 10 * step;
}
