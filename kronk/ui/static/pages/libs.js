// Libs: the llama.cpp builds installed, the platform detected, and installs/upgrades as server-side
// jobs. A job keeps running when the page goes away; on mount the page follows the running one
// (the server replays its events from the start), so a reload picks the progress up again.
import { facts, loadPanel, meter, message, table, useOpsCss } from "../lib/ops.js";

const LOG_LINES = 300;

function progressLabel(ctx, event) {
  if (event.done === null || event.done === undefined) return event.message || event.stage;
  if (event.stage === "download") {
    const total = event.total ? ` of ${ctx.formatBytes(event.total)}` : "";
    return `${event.message ? `${event.message}: ` : ""}${ctx.formatBytes(event.done)}${total}`;
  }
  return `${event.message || event.stage} ${event.done}${event.total ? ` / ${event.total}` : "%"}`;
}

export default {
  async mount(el, ctx) {
    useOpsCss();
    const abort = new AbortController();
    const overview = ctx.h("div", {}, ctx.h("p", { class: "ops-muted" }, "Loading…"));
    const installs = ctx.h("div", { class: "ops-scroll" });
    const jobBox = ctx.h("section", { class: "ops-card", hidden: true });
    const version = ctx.h("input", { name: "version", placeholder: "b11434", autocomplete: "off",
      pattern: "b?[0-9]{1,7}", "aria-describedby": "libs-version-help" });
    const source = ctx.h("select", { name: "source" },
      ctx.h("option", { value: "" }, "auto (release, then PyPI sdist, then source)"),
      ctx.h("option", { value: "release" }, "release archive"),
      ctx.h("option", { value: "sdist" }, "PyPI sdist (build)"),
      ctx.h("option", { value: "source" }, "source (build)"));
    const tools = ctx.h("input", { type: "checkbox", name: "with_tools" });
    const installButton = ctx.h("button", { type: "submit", value: "install" }, "Install");
    const upgradeButton = ctx.h("button", { type: "submit", value: "upgrade" }, "Upgrade");
    const form = ctx.h("form", { class: "ops-form", "aria-label": "Install llama.cpp" },
      ctx.h("label", {}, "Build", version,
        ctx.h("span", { id: "libs-version-help", class: "ops-muted" }, "Empty: the pinned build.")),
      ctx.h("label", {}, "Source", source),
      ctx.h("label", { class: "ops-inline" }, tools, "with the command-line tools"),
      ctx.h("div", { class: "ops-toolbar" }, installButton, upgradeButton,
        ctx.h("span", { class: "ops-muted" }, "Upgrade replaces the install even when it is current.")));

    el.replaceChildren(ctx.h("section", { class: "ops-page" },
      ctx.h("h2", {}, "llama.cpp libraries"),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "This machine"), overview),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Installed builds"), installs),
      ctx.h("section", { class: "ops-card" }, ctx.h("h3", {}, "Install or upgrade"), form),
      jobBox));

    let following = null;

    const removeInstall = async (record) => {
      const where = `${record.os}/${record.arch}/${record.processor}`;
      if (!(await ctx.confirm(`Remove llama.cpp b${record.build} for ${where}? ` +
        "A server already running keeps its loaded copy until it restarts."))) return;
      try {
        await ctx.api("DELETE", `/v1/kronk/libs/installs/${where}`);
        ctx.toast(`Removed the ${where} install`, "ok");
      } catch (error) {
        ctx.toast(message(error), "error");
      }
      await loadStatus();
    };

    const loadStatus = async () => {
      const status = await loadPanel(ctx, overview, "/v1/kronk/libs/status");
      if (!status) return null;
      const current = status.current;
      overview.replaceChildren(facts(ctx, [
        ["Platform detected", status.platform],
        ["Pinned build", `b${status.pinned_build}`],
        ["In use", current ? `${current.build ? `b${current.build}` : "unversioned"} (${current.source}) — ${current.path}`
          : "none found"],
      ]));
      version.placeholder = `b${status.pinned_build}`;
      const rows = status.installs.map((record) => {
        const remove = ctx.h("button", { type: "button", class: "danger", onclick: () => removeInstall(record) },
          "Remove");
        remove.setAttribute("aria-label", `Remove ${record.os}/${record.arch}/${record.processor}`);
        return [`${record.os}/${record.arch}/${record.processor}`, record.build ? `b${record.build}` : "—",
          record.source, record.installed_at ? new Date(record.installed_at).toLocaleString() : "—",
          record.tools ? "yes" : "no", ctx.h("span", { class: "ops-path" }, record.path),
          record.source === "external" ? "" : remove];
      });
      installs.replaceChildren(table(ctx, ["Platform", "Build", "Source", "Installed", "Tools", "Folder", ""], rows,
        { empty: "No llama.cpp build installed yet — install one below." }));
      return status;
    };

    const follow = async (job, resumed) => {
      if (following === job.id) return;
      following = job.id;
      installButton.disabled = upgradeButton.disabled = true;
      const title = ctx.h("h3", {}, `${job.action === "upgrade" ? "Upgrading" : "Installing"} llama.cpp`);
      const note = ctx.h("p", { class: "ops-muted" }, resumed ? "Picked up a job that was already running." : "");
      const bar = ctx.h("div", {}, meter(ctx, 0, 0, "starting…", "Install progress"));
      const log = ctx.h("ol", { class: "ops-log", "aria-label": "Install log" });
      const outcome = ctx.h("p", { role: "status" });
      jobBox.replaceChildren(title, note, bar, log, outcome);
      jobBox.hidden = false;
      let lastStage = null;
      const onEvent = ({ event, data }) => {
        if (event !== "progress") return;
        bar.replaceChildren(meter(ctx, data.done ?? 0, data.total ?? (data.stage === "build" ? 100 : 0),
          progressLabel(ctx, data), "Install progress"));
        // Download byte counts arrive often: log a stage once, and every non-download event.
        if (data.stage !== "download" || lastStage !== "download") {
          const line = ctx.h("li", { class: data.stage }, `[${data.stage}] ${data.message || ""}`);
          log.append(line);
          while (log.children.length > LOG_LINES) log.firstChild.remove();
          log.scrollTop = log.scrollHeight;
        }
        lastStage = data.stage;
      };
      try {
        await ctx.stream("GET", `/v1/kronk/libs/jobs/${encodeURIComponent(job.id)}/events`, undefined, onEvent,
          abort.signal);
        if (abort.signal.aborted) return;
        outcome.className = "";
        outcome.textContent = "Done.";
        ctx.toast("llama.cpp install finished", "ok");
      } catch (error) {
        if (abort.signal.aborted) return;
        outcome.className = "ops-danger";
        outcome.setAttribute("role", "alert");
        outcome.textContent = message(error);
      } finally {
        if (!abort.signal.aborted) {
          following = null;
          installButton.disabled = upgradeButton.disabled = false;
          await loadStatus();
        }
      }
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const upgrade = event.submitter === upgradeButton;
      const body = { upgrade, with_tools: tools.checked };
      if (version.value.trim()) body.version = version.value.trim();
      if (source.value) body.source = source.value;
      if (upgrade && !(await ctx.confirm("Upgrade llama.cpp? The new build is used by servers started after it."))) {
        return;
      }
      try {
        const started = await ctx.api("POST", "/v1/kronk/libs/jobs", body);
        if (!started.started) ctx.toast("A libs job is already running; showing it.", "info");
        follow(started.job, !started.started);
      } catch (error) {
        ctx.toast(message(error), "error");
      }
    });

    const status = await loadStatus();
    if (status && status.job) follow(status.job, true);
    return () => abort.abort();
  },
};
