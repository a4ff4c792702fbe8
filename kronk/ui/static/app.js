// The shell: nav, hash router (#/chat, #/models/<id>, ...), login, lazy page modules.
// Pages are plain ES modules under pages/ (see the BUI contract); a missing one shows a notice.
import { ApiError, h, makeCtx } from "./lib/ctx.js";

// The one declaration of each page: its module (pages/<id>.js, which exports only `mount`), its
// title and the grants it needs. Known before any module loads, so the nav can hide what the
// session may not use, and checked (allowed) before a module is imported.
// "admin" is the grant of the management pages (/v1/kronk, /v1/security need an admin token).
const PAGES = [
  { id: "chat", title: "Chat", grants: ["chat-completions"] },
  { id: "models", title: "Models", grants: ["admin"] },
  { id: "catalog", title: "Catalog", grants: ["admin"] },
  { id: "running", title: "Running models", grants: ["admin"] },
  { id: "libs", title: "Libs", grants: ["admin"] },
  { id: "security", title: "Security", grants: ["admin"] },
  { id: "system", title: "System", grants: ["admin"] },
];

const main = document.getElementById("main");
const navList = document.querySelector("#nav ul");
const menuButton = document.querySelector("button.menu");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");

let session = { security: "off", grants: [], login_required: false, session: false };
let unmount = null;
let mountedKey = null;
let loginShown = false;

const ctx = makeCtx({ unauthorized: () => showLogin("Your session has ended; enter the token again.") });

function allowed(page) {
  return page.grants.every((g) => ctx.can(g));
}

function renderNav(current) {
  navList.replaceChildren(...PAGES.filter(allowed).map((page) => h("li", {},
    h("a", { href: `#/${page.id}`, "aria-current": page.id === current ? "page" : null }, page.title))));
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [id, ...rest] = raw.split("/");
  return { id: id || "", rest: rest.map(decodeURIComponent).join("/") };
}

function stop() {
  if (typeof unmount === "function") {
    try {
      unmount();
    } catch (e) {
      console.warn("unmount failed", e);
    }
  }
  unmount = null;
}

function notice(title, ...body) {
  return h("section", { class: "card notice" }, h("h1", {}, title), ...body);
}

async function route() {
  const { id, rest } = parseHash();
  const page = PAGES.find((p) => p.id === id);
  if (!page) {
    const first = PAGES.find(allowed);
    if (first) location.replace(`#/${first.id}`);
    else if (session.login_required) showLogin();
    return;
  }
  renderNav(page.id);
  const key = `${id}/${rest}`;
  if (key === mountedKey && !loginShown) return;
  stop();
  mountedKey = key;
  loginShown = false;
  document.title = `${page.title} · Kronk`;
  document.body.classList.remove("nav-open");
  menuButton.setAttribute("aria-expanded", "false");
  if (!allowed(page)) {
    main.replaceChildren(notice(`${page.title}: not allowed`,
      h("p", {}, session.session
        ? "This token may not use this page (it needs an admin token)."
        : "This page needs a token with access to it."),
      loginForm()));
    return;
  }
  const el = h("div", { class: "page", id: `page-${page.id}` });
  main.replaceChildren(el);
  let module;
  try {
    module = (await import(`./pages/${page.id}.js`)).default;
  } catch (e) {
    if (mountedKey !== key) return;
    console.warn(`page ${page.id} could not be loaded`, e);
    el.replaceChildren(notice(page.title, h("p", { class: "muted" }, "This page is not part of this build yet.")));
    return;
  }
  if (mountedKey !== key) return;
  try {
    const pageCtx = { ...ctx, path: rest, navigate: (to) => { location.hash = to; } };
    const result = await module.mount(el, pageCtx);
    if (mountedKey !== key) {
      if (typeof result === "function") result();
      return;
    }
    unmount = result;
  } catch (e) {
    console.warn(`page ${page.id} failed`, e);
    el.replaceChildren(notice(page.title, h("p", { class: "error" }, e instanceof ApiError ? e.message : String(e))));
  }
}

function applySession(next) {
  session = next;
  ctx.setGrants(next.grants);
  logoutButton.hidden = !next.session;
  who.textContent = next.session ? (next.admin ? "admin" : next.subject || "signed in")
    : next.security === "off" ? "" : "not signed in";
}

async function refreshSession() {
  const res = await fetch("/ui/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!res.ok) throw new ApiError(res.status, "could not read the session");
  applySession(await res.json());
}

function loginForm(message) {
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true,
    spellcheck: false, placeholder: "eyJ…" });
  const status = h("p", { class: "error", role: "alert" }, message || "");
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "login", "aria-label": "Sign in",
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      status.textContent = "";
      try {
        const res = await fetch("/ui/session", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ token: input.value }),
        });
        input.value = "";
        const body = await res.json().catch(() => null);
        if (!res.ok) {
          const err = body?.error;
          const retry = res.headers.get("Retry-After");
          status.textContent = `${res.status}: ${err?.message ?? "sign-in failed"}${res.status === 429 && retry ? ` (retry in ${retry}s)` : ""}`;
          return;
        }
        applySession(body);
        mountedKey = null;
        await route();
        input.focus?.();
      } catch (err) {
        status.textContent = `cannot reach the server (${err.message})`;
      } finally {
        submit.disabled = false;
      }
    } },
  h("label", { for: "token" }, "API token"),
  h("p", { class: "muted small" }, "Kept by the server for this browser session only (an HttpOnly cookie); never stored in the page."),
  h("div", { class: "row" }, input, submit),
  status);
  return form;
}

function showLogin(message) {
  stop();
  mountedKey = null;
  loginShown = true;
  applySession({ ...session, session: false, grants: session.security === "management" ? session.grants.filter((g) => g !== "admin") : [] });
  renderNav(parseHash().id);
  main.replaceChildren(notice("Sign in", h("p", {}, `This server runs with security “${session.security}”.`), loginForm(message)));
  main.querySelector("#token")?.focus();
}

logoutButton.addEventListener("click", async () => {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" }).catch(() => null);
  await refreshSession().catch(() => null);
  stop();
  mountedKey = null;
  if (session.login_required && session.security === "full") showLogin();
  else route();
});

menuButton.addEventListener("click", () => {
  const open = document.body.classList.toggle("nav-open");
  menuButton.setAttribute("aria-expanded", String(open));
});

// Arrow keys move between nav links (Home/End jump); Enter follows the link as usual.
document.getElementById("nav").addEventListener("keydown", (e) => {
  const links = [...navList.querySelectorAll("a")];
  const index = links.indexOf(document.activeElement);
  if (index < 0) return;
  const moves = { ArrowDown: index + 1, ArrowRight: index + 1, ArrowUp: index - 1, ArrowLeft: index - 1,
    Home: 0, End: links.length - 1 };
  if (!(e.key in moves)) return;
  e.preventDefault();
  links[(moves[e.key] + links.length) % links.length].focus();
});

window.addEventListener("hashchange", route);

(async () => {
  try {
    await refreshSession();
  } catch (e) {
    main.replaceChildren(notice("Kronk", h("p", { class: "error" }, `The server did not answer: ${e.message}`)));
    return;
  }
  if (session.login_required && session.security === "full") {
    showLogin();
  } else {
    await route();
  }
  document.body.dataset.ready = "true";
})();
