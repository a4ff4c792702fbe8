// Chat playground: streams /v1/chat/completions; conversations live in this browser (localStorage).
import { renderMarkdown } from "../lib/markdown.js";

const STORE_KEY = "kronk.chat.v1";
const DEFAULTS = { model: "", system: "", temperature: 0.7, top_p: 0.95, top_k: 40, min_p: 0.05, max_tokens: 1024,
  seed: "", json_mode: false, json_schema: "", tools: "" };

function load() {
  try {
    const data = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    if (data && Array.isArray(data.conversations)) return data;
  } catch {
    /* a damaged store starts over */
  }
  return { conversations: [], current: null, settings: { ...DEFAULTS } };
}

function newConversation() {
  return { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title: "New chat", messages: [] };
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
  return "";
}

export default {
  async mount(el, ctx) {
    const { h } = ctx;
    const state = load();
    state.settings = { ...DEFAULTS, ...(state.settings || {}) };
    let convo = state.conversations.find((c) => c.id === state.current);
    if (!convo) {
      convo = newConversation();
      state.conversations.unshift(convo);
      state.current = convo.id;
    }
    let models = [];
    let controller = null;
    let pendingImages = [];

    const save = () => {
      try {
        localStorage.setItem(STORE_KEY, JSON.stringify(state));
      } catch (e) {
        ctx.toast(`could not save the conversation: ${e.message}`, "error");
      }
    };

    // --- settings panel ----------------------------------------------------------
    const s = state.settings;
    const modelSelect = h("select", { id: "chat-model", onchange: () => { s.model = modelSelect.value; save(); updateImageInput(); } });
    const num = (key, label, attrs) => h("label", {}, label, h("input", { type: "number", id: `chat-${key}`, value: s[key],
      ...attrs, oninput: (e) => { s[key] = e.target.value === "" ? "" : Number(e.target.value); save(); } }));
    const systemBox = h("textarea", { id: "chat-system", rows: 3, value: s.system, placeholder: "You are a helpful assistant.",
      oninput: (e) => { s.system = e.target.value; save(); } });
    const jsonToggle = h("input", { type: "checkbox", id: "chat-json", checked: s.json_mode,
      onchange: (e) => { s.json_mode = e.target.checked; save(); schemaBox.hidden = !s.json_mode; } });
    const schemaBox = h("textarea", { id: "chat-schema", rows: 4, value: s.json_schema, hidden: !s.json_mode,
      "aria-label": "JSON schema", placeholder: '{"type": "object", "properties": {...}} (empty: any JSON object)',
      oninput: (e) => { s.json_schema = e.target.value; save(); } });
    const toolsBox = h("textarea", { id: "chat-tools", rows: 3, value: s.tools,
      placeholder: '[{"type": "function", "function": {"name": "...", "parameters": {...}}}]',
      oninput: (e) => { s.tools = e.target.value; save(); } });
    const settings = h("aside", { class: "settings card stack", "aria-label": "Chat settings" },
      h("label", { for: "chat-model" }, "Model"), modelSelect,
      h("label", {}, "System prompt", systemBox),
      h("div", { class: "grid" },
        num("temperature", "Temperature", { min: 0, max: 2, step: 0.05 }),
        num("top_p", "top_p", { min: 0, max: 1, step: 0.01 }),
        num("top_k", "top_k", { min: 0, step: 1 }),
        num("min_p", "min_p", { min: 0, max: 1, step: 0.01 }),
        num("max_tokens", "Max tokens", { min: 1, step: 1 }),
        num("seed", "Seed", { step: 1, placeholder: "random" })),
      h("label", { class: "check" }, jsonToggle, "JSON mode (schema below, optional)"), schemaBox,
      h("label", {}, "Tools (JSON, optional)", toolsBox));

    // --- conversations -----------------------------------------------------------
    const convoList = h("ul", {});
    const convos = h("aside", { class: "convos card", "aria-label": "Conversations" },
      h("div", { class: "row" }, h("h2", { class: "grow" }, "Chats"),
        h("button", { type: "button", class: "small", onclick: () => {
          if (controller) return;
          convo = newConversation();
          state.conversations.unshift(convo);
          state.current = convo.id;
          save();
          renderAll();
        } }, "New")),
      convoList);

    function renderConvos() {
      convoList.replaceChildren(...state.conversations.map((c) => h("li", {},
        h("button", { type: "button", class: "open", "aria-current": c.id === convo.id ? "true" : "false", title: c.title,
          onclick: () => {
            if (controller) return;
            convo = c;
            state.current = c.id;
            save();
            renderAll();
          } }, c.title),
        h("button", { type: "button", class: "ghost small", "aria-label": `Delete chat ${c.title}`, onclick: async () => {
          if (!(await ctx.confirm(`Delete the chat “${c.title}”?`, { confirmLabel: "Delete" }))) return;
          state.conversations = state.conversations.filter((x) => x !== c);
          if (c === convo) {
            convo = state.conversations[0] || newConversation();
            if (!state.conversations.includes(convo)) state.conversations.unshift(convo);
            state.current = convo.id;
          }
          save();
          renderAll();
        } }, "×"))));
    }

    // --- messages ----------------------------------------------------------------
    const list = h("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages" });

    function messageView(msg, index) {
      const body = h("div", { class: "body" });
      const view = h("article", { class: `msg ${msg.role}`, dataset: { index: String(index) } },
        h("p", { class: "who muted" }, msg.role === "user" ? "You" : msg.model ? `Assistant · ${msg.model}` : "Assistant"),
        body);
      fillMessage(view, body, msg, index);
      return view;
    }

    function fillMessage(view, body, msg, index) {
      const parts = [];
      if (msg.reasoning) {
        parts.push(h("details", { class: "reasoning-box", open: !msg.content },
          h("summary", { class: "muted small" }, "Reasoning"), h("div", { class: "reasoning" }, msg.reasoning)));
      }
      if (Array.isArray(msg.content)) {
        for (const part of msg.content) {
          if (part.type === "image_url") parts.push(h("img", { class: "thumb", src: part.image_url.url, alt: "attached image" }));
        }
      }
      const content = textOf(msg.content);
      if (content) {
        const md = h("div", { class: "markdown" });
        md.appendChild(msg.role === "assistant" ? renderMarkdown(content) : document.createTextNode(content));
        if (msg.role === "user") md.style.whiteSpace = "pre-wrap";
        parts.push(md);
      }
      for (const call of msg.tool_calls || []) {
        parts.push(h("div", { class: "toolcall" }, `tool call: ${call.function?.name ?? "?"}(${call.function?.arguments ?? ""})`));
      }
      if (msg.error) parts.push(h("p", { class: "error", role: "alert" }, msg.error));
      if (msg.stopped) parts.push(h("p", { class: "muted small" }, "(stopped)"));
      if (msg.stats) {
        const st = msg.stats;
        parts.push(h("p", { class: "stats" },
          `${st.tokens ?? "?"} tokens · ${st.tps ? st.tps.toFixed(1) : "–"} tokens/s · TTFT ${ctx.formatDuration(st.ttft)}`));
      }
      if (!msg.streaming) {
        const actions = h("div", { class: "actions" });
        actions.append(h("button", { type: "button", class: "ghost small", onclick: async () => {
          try {
            await navigator.clipboard.writeText(content);
            ctx.toast("copied", "ok");
          } catch (e) {
            ctx.toast(`copy failed: ${e.message}`, "error");
          }
        } }, "Copy"));
        if (msg.role === "assistant" && index === convo.messages.length - 1) {
          actions.append(h("button", { type: "button", class: "ghost small", onclick: regenerate }, "Regenerate"));
        }
        if (msg.role === "user") {
          actions.append(h("button", { type: "button", class: "ghost small", onclick: () => edit(view, index) }, "Edit"));
        }
        parts.push(actions);
      }
      body.replaceChildren(...parts);
    }

    function renderMessages() {
      if (!convo.messages.length) {
        list.replaceChildren(h("div", { class: "empty" }, models.length
          ? "Ask something to start. Replies stream in as the model writes them."
          : "No models yet — pull one on the Models or Catalog page."));
        return;
      }
      list.replaceChildren(...convo.messages.map(messageView));
    }

    function edit(view, index) {
      if (controller) return;
      const msg = convo.messages[index];
      const box = h("textarea", { rows: 4, value: textOf(msg.content), "aria-label": "Edit message" });
      const body = view.querySelector(".body");
      body.replaceChildren(box, h("div", { class: "row" },
        h("button", { type: "button", onclick: () => {
          const text = box.value.trim();
          if (!text) return;
          const images = Array.isArray(msg.content) ? msg.content.filter((p) => p.type === "image_url") : [];
          convo.messages = convo.messages.slice(0, index);
          convo.messages.push({ role: "user", content: images.length ? [{ type: "text", text }, ...images] : text });
          save();
          send();
        } }, "Save and send"),
        h("button", { type: "button", class: "ghost", onclick: renderMessages }, "Cancel")));
      box.focus();
    }

    function regenerate() {
      if (controller || !jsonSettingsOk()) return;
      if (convo.messages.at(-1)?.role === "assistant") convo.messages.pop();
      save();
      send();
    }

    // --- composer ----------------------------------------------------------------
    const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Message (Enter sends, Shift+Enter for a new line)",
      "aria-label": "Message", onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          submit();
        }
      } });
    const sendButton = h("button", { type: "button", id: "chat-send", onclick: () => submit() }, "Send");
    const stopButton = h("button", { type: "button", id: "chat-stop", class: "danger", hidden: true,
      onclick: () => controller?.abort() }, "Stop");
    const thumbs = h("div", { class: "row" });
    const imageInput = h("input", { type: "file", id: "chat-image", accept: "image/*", multiple: true,
      onchange: async (e) => {
        for (const file of e.target.files) {
          if (file.size > 20 * 1024 * 1024) {
            ctx.toast(`${file.name} is larger than 20 MB`, "error");
            continue;
          }
          const url = await new Promise((resolve, reject) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result);
            reader.onerror = () => reject(reader.error);
            reader.readAsDataURL(file);
          });
          pendingImages.push(url);
        }
        e.target.value = "";
        renderThumbs();
      } });
    const imageLabel = h("label", { class: "check", hidden: true }, "Image", imageInput);

    function renderThumbs() {
      thumbs.replaceChildren(...pendingImages.map((url, i) => h("span", {},
        h("img", { class: "thumb", src: url, alt: `image ${i + 1}` }),
        h("button", { type: "button", class: "ghost small", "aria-label": `Remove image ${i + 1}`,
          onclick: () => { pendingImages.splice(i, 1); renderThumbs(); } }, "×"))));
    }

    function selectedModel() {
      return models.find((m) => m.id === modelSelect.value);
    }

    function updateImageInput() {
      const vision = Boolean(selectedModel()?.capabilities?.vision);
      imageLabel.hidden = !vision;
      if (!vision && pendingImages.length) {
        pendingImages = [];
        renderThumbs();
      }
    }

    function jsonSettingsOk() {
      try {
        if (s.json_mode && s.json_schema.trim()) JSON.parse(s.json_schema);
        if (s.tools.trim()) JSON.parse(s.tools);
        return true;
      } catch (e) {
        ctx.toast(`JSON mode or tools: not valid JSON (${e.message})`, "error");
        return false;
      }
    }

    function submit() {
      if (controller) return;
      const text = input.value.trim();
      if (!text && !pendingImages.length) return;
      if (!jsonSettingsOk()) return;
      const content = pendingImages.length
        ? [{ type: "text", text }, ...pendingImages.map((url) => ({ type: "image_url", image_url: { url } }))]
        : text;
      convo.messages.push({ role: "user", content });
      if (convo.title === "New chat" && text) convo.title = text.slice(0, 40);
      input.value = "";
      pendingImages = [];
      renderThumbs();
      save();
      renderConvos();
      send();
    }

    function requestBody() {
      const body = { model: modelSelect.value || undefined, stream: true, stream_options: { include_usage: true } };
      const messages = [];
      if (s.system.trim()) messages.push({ role: "system", content: s.system });
      for (const m of convo.messages) {
        const out = { role: m.role, content: m.content ?? "" };
        if (m.tool_calls?.length) out.tool_calls = m.tool_calls;
        messages.push(out);
      }
      body.messages = messages;
      for (const key of ["temperature", "top_p", "top_k", "min_p", "max_tokens", "seed"]) {
        if (s[key] !== "" && s[key] !== null && s[key] !== undefined && !Number.isNaN(Number(s[key]))) body[key] = Number(s[key]);
      }
      if (s.json_mode) {
        if (s.json_schema.trim()) {
          body.response_format = { type: "json_schema", json_schema: { name: "response", schema: JSON.parse(s.json_schema) } };
        } else {
          body.response_format = { type: "json_object" };
        }
      }
      if (s.tools.trim()) body.tools = JSON.parse(s.tools);
      return body;
    }

    async function send() {
      let body;
      try {
        body = requestBody();
      } catch (e) {
        ctx.toast(`JSON mode or tools: not valid JSON (${e.message})`, "error");
        renderMessages();
        return;
      }
      const msg = { role: "assistant", content: "", reasoning: "", tool_calls: [], streaming: true, model: body.model };
      convo.messages.push(msg);
      renderMessages();
      const view = list.lastElementChild;
      const bodyEl = view.querySelector(".body");
      controller = new AbortController();
      sendButton.hidden = true;
      stopButton.hidden = false;
      const started = performance.now();
      let first = null;
      let chunks = 0;
      let usage = null;
      let scheduled = false;
      const paint = () => {
        if (scheduled) return;
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          fillMessage(view, bodyEl, msg, convo.messages.length - 1);
          list.lastElementChild?.scrollIntoView({ block: "end" });
        });
      };
      try {
        await ctx.stream("POST", "/v1/chat/completions", body, ({ data }) => {
          if (!data || typeof data !== "object") return;
          if (data.usage) usage = data.usage;
          if (data.model) msg.model = data.model;
          const delta = data.choices?.[0]?.delta;
          if (!delta) return;
          if (delta.content || delta.reasoning_content) {
            first ??= performance.now();
            chunks += 1;
          }
          if (delta.content) msg.content += delta.content;
          if (delta.reasoning_content) msg.reasoning += delta.reasoning_content;
          for (const call of delta.tool_calls || []) {
            const slot = (msg.tool_calls[call.index ?? msg.tool_calls.length] ??= { id: call.id, type: "function", function: { name: "", arguments: "" } });
            if (call.id) slot.id = call.id;
            if (call.function?.name) slot.function.name += call.function.name;
            if (call.function?.arguments) slot.function.arguments += call.function.arguments;
          }
          paint();
        }, controller.signal);
      } catch (e) {
        if (e.type === "aborted") msg.stopped = true;
        else msg.error = `${e.status ? `${e.status}: ` : "error: "}${e.message}${e.code ? ` (${e.code})` : ""}`;
      } finally {
        const ended = performance.now();
        const tokens = usage?.completion_tokens ?? chunks;
        msg.stats = { tokens, ttft: first === null ? null : (first - started) / 1000,
          tps: first !== null && ended > first && tokens > 1 ? (tokens - 1) / ((ended - first) / 1000) : null };
        delete msg.streaming;
        if (!msg.tool_calls.length) delete msg.tool_calls;
        if (!msg.reasoning) delete msg.reasoning;
        controller = null;
        sendButton.hidden = false;
        stopButton.hidden = true;
        save();
        renderMessages();
        list.lastElementChild?.scrollIntoView({ block: "end" });
      }
    }

    const composer = h("div", { class: "composer card stack" }, input, thumbs,
      h("div", { class: "row" }, imageLabel, h("span", { class: "grow" }), stopButton, sendButton));
    const center = h("section", { class: "stack", "aria-label": "Conversation" }, list, composer);
    el.append(h("h1", {}, "Chat"), h("div", { class: "chat" }, convos, center, settings));

    function renderAll() {
      renderConvos();
      renderMessages();
    }

    try {
      models = (await ctx.api("GET", "/v1/models")).data || [];
    } catch (e) {
      ctx.toast(`models: ${e.message}`, "error");
    }
    const sorted = [...models].sort((a, b) => Number(b.loaded) - Number(a.loaded) || a.id.localeCompare(b.id));
    modelSelect.replaceChildren(...sorted.map((m) => h("option", { value: m.id }, m.loaded ? `${m.id} (loaded)` : m.id)));
    if (s.model && models.some((m) => m.id === s.model)) modelSelect.value = s.model;
    else if (sorted.length) s.model = modelSelect.value = sorted[0].id;
    updateImageInput();
    renderAll();
    input.focus();

    return () => {
      controller?.abort();
    };
  },
};
