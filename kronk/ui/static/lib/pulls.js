// Model pulls with live progress (bytes, speed, ETA) from the management API's SSE, shared by the
// Models and Catalog pages. A pull keeps running on the server when the page goes away; the pulls
// this browser started are remembered (localStorage) and followed again on the next visit: the
// server joins a second request for a model already being pulled to the running download.

const KEY = "kronk.pulls.v1";
let leaving = false;
// A reload or a closed tab cuts the streams: those pulls stay remembered, to be followed again.
addEventListener("beforeunload", () => { leaving = true; });
addEventListener("pagehide", () => { leaving = true; });

function remembered() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((p) => p && typeof p.path === "string") : [];
  } catch {
    return [];
  }
}

function remember(list) {
  localStorage.setItem(KEY, JSON.stringify(list));
}

/** Bytes per second over the last few seconds of samples [(t, bytes)]. */
function speedOf(samples) {
  if (samples.length < 2) return null;
  const [t0, b0] = samples[0];
  const [t1, b1] = samples[samples.length - 1];
  return t1 > t0 ? (b1 - b0) / ((t1 - t0) / 1000) : null;
}

/**
 * A panel of running pulls. `start(label, path, body)` begins one (POST `path` with `body`);
 * `resume()` follows the remembered ones again; `onDone(result)` is called after each success.
 */
export function pullPanel(ctx, { onDone } = {}) {
  const { h } = ctx;
  const root = h("section", { class: "pulls stack", "aria-label": "Downloads", "aria-live": "polite" });
  const running = new Map();

  function row(label) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${label}` });
    const line = h("p", { class: "small muted" }, "waiting for the server's progress…");
    const stopButton = h("button", { type: "button", class: "ghost small",
      title: "Stop following here; the server finishes the download anyway" }, "Stop following");
    const cancelButton = h("button", { type: "button", class: "danger small",
      title: "Stop the download on the server and remove its partial files" }, "Cancel pull");
    const el = h("div", { class: "card pull", dataset: { pull: label } },
      h("div", { class: "row" }, h("strong", { class: "grow" }, label), stopButton, cancelButton), bar, line);
    return { el, bar, line, stopButton, cancelButton };
  }

  async function follow(entry) {
    if (running.has(entry.label)) return;
    const view = row(entry.label);
    const controller = new AbortController();
    running.set(entry.label, controller);
    view.stopButton.addEventListener("click", () => controller.abort("user"));
    let modelId = entry.label; // the server's id for the model once it has resolved the spec
    view.cancelButton.addEventListener("click", async () => {
      const question = `Cancel the pull of ${entry.label}? Its partial files are removed.`;
      if (!(await ctx.confirm(question, { confirmLabel: "Cancel pull", cancelLabel: "Keep downloading" }))) return;
      try {
        await ctx.api("POST", "/v1/kronk/models/pull/cancel", { model: modelId });
      } catch (e) {
        ctx.toast(`could not cancel: ${e.message}`, "error");
      }
    });
    root.prepend(view.el);
    const samples = [];
    let file = null;
    try {
      let result = null;
      await ctx.stream("POST", entry.path, entry.body, ({ event, data }) => {
        if (event === "done") {
          result = data;
          return;
        }
        if (!data || typeof data !== "object") return;
        if (data.status !== "resolving" && typeof data.model === "string") modelId = data.model;
        if (data.file !== file) {
          file = data.file;
          samples.length = 0;
        }
        const { completed, total } = data;
        if (typeof completed === "number" && typeof total === "number" && total > 0) {
          const now = performance.now();
          samples.push([now, completed]);
          while (samples.length > 2 && now - samples[0][0] > 4000) samples.shift();
          const speed = speedOf(samples);
          view.bar.max = total;
          view.bar.value = completed;
          const eta = speed && speed > 0 ? (total - completed) / speed : null;
          view.line.textContent = `${data.status} ${data.file ?? ""}: ${ctx.formatBytes(completed)} of ${ctx.formatBytes(total)}`
            + ` · ${speed ? `${ctx.formatBytes(speed)}/s` : "–"} · ETA ${eta === null ? "–" : ctx.formatDuration(eta)}`;
        } else {
          view.line.textContent = data.message || data.status || "working…";
        }
      }, controller.signal);
      view.bar.max = 1;
      view.bar.value = 1;
      const id = result?.model?.id ?? result?.id ?? entry.label;
      view.line.textContent = result?.status === "exists" ? `${id} was already installed` : `${id} is installed`;
      view.el.classList.add("done");
      ctx.toast(`pulled ${id}`, "ok");
      onDone?.(result);
      setTimeout(() => view.el.remove(), 8000);
    } catch (e) {
      if (leaving) return;
      if (e.type === "aborted") {
        view.line.textContent = "no longer followed here (the server keeps downloading)";
      } else if (e.code === "pull_cancelled") {
        view.line.textContent = "cancelled; its partial files were removed";
        setTimeout(() => view.el.remove(), 8000);
      } else {
        view.line.replaceChildren(h("span", { class: "error", role: "alert" },
          `${e.status ? `${e.status}: ` : ""}${e.message}`));
        ctx.toast(`pull of ${entry.label} failed: ${e.message}`, "error");
      }
    } finally {
      running.delete(entry.label);
      // Leaving the page keeps the pull remembered, so the next visit follows it again.
      if (!leaving && controller.signal.reason !== "unmount") remember(remembered().filter((p) => p.label !== entry.label));
    }
  }

  return {
    el: root,
    start(label, path, body) {
      const entry = { label, path, body };
      remember([...remembered().filter((p) => p.label !== label), entry]);
      follow(entry);
    },
    resume() {
      for (const entry of remembered()) follow(entry);
    },
    stop() {
      for (const controller of running.values()) controller.abort("unmount");
    },
  };
}
