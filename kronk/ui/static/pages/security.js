// Security: the mode and settings, signing keys (create, delete with confirmation) and tokens
// (endpoint grants with limits and windows, a duration; the token is shown once, with a copy button).
import { errorNote, facts, loadPanel, message, table, useOpsCss } from "../lib/ops.js";

async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("the browser refused to copy; select the token and copy it by hand");
}

function grantRow(ctx, name, windows) {
  const id = `grant-${name}`;
  const enabled = ctx.h("input", { type: "checkbox", id, name: "endpoint", value: name });
  const limit = ctx.h("input", { type: "number", min: "1", step: "1", value: "1000", disabled: true,
    "aria-label": `${name} limit` });
  const windowSelect = ctx.h("select", { disabled: true, "aria-label": `${name} window` },
    ...windows.map((w) => ctx.h("option", { value: w }, w === "unlimited" ? "unlimited" : `per ${w}`)));
  windowSelect.value = "unlimited";
  limit.disabled = true;
  const sync = () => {
    windowSelect.disabled = !enabled.checked;
    limit.disabled = !enabled.checked || windowSelect.value === "unlimited";
  };
  enabled.addEventListener("change", sync);
  windowSelect.addEventListener("change", sync);
  return {
    nodes: [ctx.h("label", { for: id, class: "ops-inline" }, enabled, name), limit, windowSelect],
    value: () => {
      if (!enabled.checked) return null;
      return windowSelect.value === "unlimited" ? { window: "unlimited" }
        : { window: windowSelect.value, limit: Number(limit.value) };
    },
  };
}

export default {
  async mount(el, ctx) {
    useOpsCss();
    const settings = ctx.h("div", {}, ctx.h("p", { class: "ops-muted" }, "Loading…"));
    const keys = ctx.h("div", { class: "ops-scroll" });
    const tokenForm = ctx.h("form", { class: "ops-form", "aria-label": "Create a token" });
    const secret = ctx.h("div");
    el.replaceChildren(ctx.h("section", { class: "ops-page" },
      ctx.h("h2", {}, "Security"),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Settings"), settings),
      ctx.h("section", { class: "ops-card" },
        ctx.h("header", {}, ctx.h("h3", {}, "Signing keys"),
          ctx.h("button", { type: "button", onclick: () => createKey() }, "Create key")),
        ctx.h("p", { class: "ops-muted" }, "The newest key signs new tokens; deleting a key revokes every token it signed."),
        keys),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Create a token"), tokenForm, secret)));

    const loadKeys = async () => {
      try {
        const list = await ctx.api("GET", "/v1/security/keys");
        const rows = list.data.map((key) => {
          const remove = ctx.h("button", { type: "button", class: "danger", onclick: () => deleteKey(key.kid) },
            "Delete");
          remove.setAttribute("aria-label", `Delete key ${key.kid}`);
          return [key.kid, new Date(key.created).toLocaleString(), key.signing ? "signing" : "", remove];
        });
        keys.replaceChildren(table(ctx, ["Key id", "Created", "", ""], rows,
          { empty: "No keys yet — one is created with the first token." }));
      } catch (error) {
        keys.replaceChildren(errorNote(ctx, error));
      }
    };

    const createKey = async () => {
      try {
        const key = await ctx.api("POST", "/v1/security/keys");
        ctx.toast(`Created key ${key.kid}; it signs new tokens from now on`, "ok");
      } catch (error) {
        ctx.toast(message(error), "error");
      }
      await loadKeys();
    };

    const deleteKey = async (kid) => {
      if (!(await ctx.confirm(`Delete key ${kid}? Every token it signed stops working at once.`))) return;
      try {
        await ctx.api("DELETE", `/v1/security/keys/${encodeURIComponent(kid)}`);
        ctx.toast(`Deleted key ${kid}`, "ok");
      } catch (error) {
        ctx.toast(message(error), "error");
      }
      await loadKeys();
    };

    const config = await loadPanel(ctx, settings, "/v1/security/config");
    if (!config) return () => {};
    const modeNote = {
      off: "off — every endpoint is open; tokens are not checked.",
      management: "management — the management APIs need an admin token; inference is open.",
      full: "full — every call needs a token with a grant for its endpoint.",
    };
    settings.replaceChildren(facts(ctx, [
      ["Mode", modeNote[config.mode] || config.mode],
      ["Issuer", config.issuer],
      ["Default token lifetime", config.token_duration],
      ["Keys", `${config.keys} in ${config.keys_dir}`],
      ["Policies", config.policy_dir],
      ["Rate-limit store", config.rate_store],
      ["Clock leeway", `${config.leeway_seconds} s`],
      ["Public paths", config.public_paths.length ? config.public_paths.join(", ") : "none"],
    ]));
    await loadKeys();

    const subject = ctx.h("input", { name: "subject", maxlength: "256", placeholder: "who it is for", autocomplete: "off" });
    const duration = ctx.h("input", { name: "duration", placeholder: config.token_duration,
      "aria-describedby": "token-duration-help", autocomplete: "off" });
    const admin = ctx.h("input", { type: "checkbox", name: "admin" });
    const grants = (config.endpoints || []).map((name) => [name, grantRow(ctx, name, config.windows || ["unlimited"])]);
    const submit = ctx.h("button", { type: "submit" }, "Create token");
    tokenForm.replaceChildren(
      ctx.h("label", {}, "Subject", subject),
      ctx.h("label", {}, "Duration", duration,
        ctx.h("span", { id: "token-duration-help", class: "ops-muted" },
          `e.g. 90s, 1.5h, 30d, 1y; empty: ${config.token_duration}`)),
      ctx.h("label", { class: "ops-inline" }, admin, "admin (management APIs and every endpoint)"),
      ctx.h("fieldset", {}, ctx.h("legend", {}, "Endpoint grants"),
        ctx.h("div", { class: "ops-grants" }, ctx.h("strong", {}, "Endpoint"), ctx.h("strong", {}, "Limit"),
          ctx.h("strong", {}, "Window"), ...grants.flatMap(([, row]) => row.nodes))),
      ctx.h("div", { class: "ops-toolbar" }, submit));

    const showToken = (issued) => {
      const area = ctx.h("textarea", { readonly: "", rows: "4", "aria-label": "The new token" });
      area.value = issued.token;
      const copyButton = ctx.h("button", { type: "button", onclick: async () => {
        try {
          await copy(issued.token);
          ctx.toast("Token copied", "ok");
        } catch (error) {
          ctx.toast(message(error), "error");
        }
      } }, "Copy");
      const done = ctx.h("button", { type: "button", onclick: () => secret.replaceChildren() }, "Done — hide it");
      const endpoints = Object.entries(issued.endpoints || {})
        .map(([name, g]) => (g.window === "unlimited" ? name : `${name} ${g.limit}/${g.window}`)).join(", ");
      secret.replaceChildren(ctx.h("div", { class: "ops-secret", role: "status" },
        ctx.h("strong", {}, "Copy this token now: it is shown only once."),
        area,
        facts(ctx, [
          ["Subject", issued.subject || "—"],
          ["Admin", issued.admin ? "yes" : "no"],
          ["Endpoints", endpoints || (issued.admin ? "all (admin)" : "none")],
          ["Expires", new Date(issued.expires_at * 1000).toLocaleString()],
          ["Key", issued.kid],
        ]),
        ctx.h("div", { class: "ops-toolbar" }, copyButton, done)));
      area.focus();
      area.select();
    };

    tokenForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { admin: admin.checked };
      if (subject.value.trim()) body.subject = subject.value.trim();
      if (duration.value.trim()) body.duration = duration.value.trim();
      const endpoints = {};
      for (const [name, row] of grants) {
        const grant = row.value();
        if (grant) endpoints[name] = grant;
      }
      if (Object.keys(endpoints).length) body.endpoints = endpoints;
      submit.disabled = true;
      try {
        showToken(await ctx.api("POST", "/v1/security/tokens", body));
        await loadKeys();
      } catch (error) {
        ctx.toast(message(error), "error");
      } finally {
        submit.disabled = false;
      }
    });

    return () => secret.replaceChildren();
  },
};
