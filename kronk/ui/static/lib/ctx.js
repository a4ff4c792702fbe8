// The page context (see the BUI contract): API calls, SSE streams, safe DOM building,
// toasts, confirmation, grants and formatting. Pages get one `ctx` from the shell.
// Nothing here ever assigns server data to innerHTML: `h` makes text nodes of strings.

export class ApiError extends Error {
  /** status: HTTP status (0: network or stream failure); type/code: the API's error type and code. */
  constructor(status, message, type = "api_error", code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

/** The ApiError for an error body in OpenAI's ({error: {...}}) or Anthropic's shape. */
export function errorFromBody(status, body, fallback) {
  const err = body && typeof body === "object" ? body.error ?? null : null;
  if (err && typeof err === "object") {
    return new ApiError(status, String(err.message ?? fallback), String(err.type ?? "api_error"), err.code ?? null);
  }
  if (typeof err === "string") return new ApiError(status, err);
  return new ApiError(status, fallback);
}

async function errorFromResponse(res) {
  const fallback = `${res.status} ${res.statusText || "error"}`;
  let body = null;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const error = errorFromBody(res.status, body, fallback);
  const retry = res.headers.get("Retry-After");
  if (res.status === 429 && retry && !/retry|again/i.test(error.message)) error.message += ` (retry in ${retry}s)`;
  return error;
}

function parseData(text) {
  if (text === "" || text === "[DONE]") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Split an SSE text buffer into complete events; returns [events, rest]. */
export function parseSSE(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event !== null || data.length) events.push({ event, data: parseData(data.join("\n")) });
  }
  return [events, rest];
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Build the ctx object; `hooks.unauthorized(error)` is told of every 401 (the shell asks for a token). */
export function makeCtx(hooks = {}) {
  let grants = new Set();

  async function call(method, path, body, signal) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin", signal };
    if (body !== undefined && body !== null) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    } else if (!SAFE.has(method)) {
      init.headers["Content-Type"] = "application/json";
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      if (signal?.aborted) throw new ApiError(0, "stopped", "aborted", "aborted");
      throw new ApiError(0, `cannot reach the server (${e.message})`, "network_error");
    }
    if (!res.ok) {
      const error = await errorFromResponse(res);
      if (res.status === 401 && hooks.unauthorized) hooks.unauthorized(error);
      throw error;
    }
    return res;
  }

  /** JSON in, JSON out; throws ApiError for any non-2xx with the server's message. */
  async function api(method, path, body) {
    const res = await call(method, path, body);
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /**
   * Read an SSE answer; onEvent({event, data}) per event (data JSON-parsed when it is JSON).
   * Rejects: ApiError with the status for an error answer; with the event's message for an
   * `error` event or a `data: {"error": ...}` frame; "stream dropped" when the connection ends
   * before a `[DONE]` or `done` event; status 0 / type "aborted" when `signal` stopped it.
   * Resolves with the number of events read.
   */
  async function stream(method, path, body, onEvent, signal) {
    const res = await call(method, path, body, signal);
    const type = res.headers.get("Content-Type") || "";
    if (!type.includes("text/event-stream")) {
      // A JSON answer where a stream was asked (e.g. a finished job): hand it over as one `done` event.
      const text = await res.text();
      onEvent({ event: "done", data: parseData(text) });
      return 1;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let count = 0;
    let finished = false;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal?.aborted) throw new ApiError(0, "stopped", "aborted", "aborted");
        throw new ApiError(0, "stream dropped: the connection to the server was lost", "stream_dropped");
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      const [events, rest] = parseSSE(buffer);
      buffer = rest;
      for (const ev of events) {
        count += 1;
        const data = ev.data;
        if (ev.event === "error" || (data && typeof data === "object" && !Array.isArray(data) && data.error
            && typeof data.error === "object" && ev.event !== "done")) {
          // An error after the stream began has no HTTP status of its own (the answer was already 200).
          const status = Number(data?.error?.status ?? data?.status ?? 0) || 0;
          throw errorFromBody(status, data, "the server reported an error");
        }
        if (data === "[DONE]" || ev.event === "done") finished = true;
        onEvent(ev);
      }
    }
    if (signal?.aborted) throw new ApiError(0, "stopped", "aborted", "aborted");
    if (!finished) throw new ApiError(0, "stream dropped: the server closed the connection before the end", "stream_dropped");
    return count;
  }

  return {
    api,
    stream,
    h,
    toast,
    confirm: confirmDialog,
    can: (grant) => grants.has(grant) || grants.has("admin"),
    setGrants(list) {
      grants = new Set(list || []);
    },
    formatBytes,
    formatDuration,
    ApiError,
  };
}

/** A DOM element; strings and numbers become text nodes, arrays are flattened, null/false skipped. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class" || key === "className") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value);
    } else if (key === "dataset" && typeof value === "object") {
      Object.assign(el.dataset, value);
    } else if (key === "html" || key === "innerHTML") {
      throw new Error("h(): raw HTML is not allowed");
    } else if (key.startsWith("aria-") || key.startsWith("data-") || key === "role" || key === "for"
               || !(key in el)) {
      el.setAttribute(key, value === true ? "" : String(value));
    } else {
      el[key] = value;
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === true) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** A message in the corner; kind: "info" | "ok" | "error". Errors stay longer. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const close = h("button", { type: "button", class: "ghost", "aria-label": "Dismiss", onclick: () => item.remove() }, "×");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, String(message)), close);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === "error" ? 10000 : 4000);
}

/** A modal yes/no question; resolves true only for the confirm button. */
export function confirmDialog(message, { confirmLabel = "Confirm", cancelLabel = "Cancel" } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": "Confirm" });
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h("p", {}, String(message)),
      h("div", { class: "row end" },
        h("button", { type: "button", class: "ghost", onclick: () => done(false) }, cancelLabel),
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel)),
    );
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    dialog.querySelector("button.danger").focus();
  });
}

export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  let s = Math.max(0, Number(seconds));
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const h_ = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  s = Math.floor(s % 60);
  return h_ ? `${h_}h ${String(m).padStart(2, "0")}m` : `${m}m ${String(s).padStart(2, "0")}s`;
}
