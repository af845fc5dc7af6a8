// Applications: state, mode, uptime, dependencies, process count, environment, actions,
// and the supervision tree window.

import { h, replace, num, secs, stateClass } from "../dom.js";
import { conn, subscribe } from "../data.js";
import { act, modal } from "../ui.js";
import { openTree } from "../treewin.js";

export function mount(root, ctx) {
  const open = new Set();
  const totals = h("div", { class: "toolbar" });
  const tbody = h("tbody");
  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Applications"), totals),
    h("div", { class: "scroll" }, h("table", { class: "t", "data-testid": "app-table" },
      h("thead", null, h("tr", null, ["", "Name", "State", "Mode", "Uptime", "Processes", "Depends on", "Version",
        "Description", "Actions"].map((c) => h("th", null, c)))), tbody)));

  function actions(a) {
    const off = !conn.actions;
    const t = off ? "actions are off (observer started without a token)" : "";
    const running = a.State === "running";
    return h("td", { class: "toolbar", onclick: (e) => e.stopPropagation() },
      h("button", { class: "btn small", "data-action": "tree", onclick: () => openTree(a.Name, ctx) }, "Tree"),
      running ? null : h("button", { class: "btn small", disabled: off, title: t, "data-action": "start",
        onclick: async () => {
          const mode = await modal({ title: "Start " + a.Name, text: "mode: temporary, transient or permanent",
            input: { value: a.Mode || "temporary" }, ok: "Start" });
          if (mode) act("app_start", { name: a.Name, mode });
        } }, "Start"),
      running ? h("button", { class: "btn small", disabled: off, title: t, "data-action": "stop",
        onclick: () => act("app_stop", { name: a.Name }, { confirm: "Stop " + a.Name + "?", ok: "Stop" }) }, "Stop") : null,
      running ? h("button", { class: "btn small danger", disabled: off, title: t, "data-action": "force-stop",
        onclick: () => act("app_stop", { name: a.Name, force: true }, { confirm: "Force stop " + a.Name + "?",
          detail: "Its processes are killed without waiting for them to stop.", ok: "Force stop" }) }, "Force") : null,
      running ? null : h("button", { class: "btn small danger", disabled: off, title: t, "data-action": "unload",
        onclick: () => act("app_unload", { name: a.Name }, { confirm: "Unload " + a.Name + "?", ok: "Unload" }) }, "Unload"));
  }

  let last = null;
  function render(d) {
    const apps = d.Applications.slice().sort((a, b) => String(a.Name).localeCompare(String(b.Name)));
    const by = (s) => apps.filter((a) => a.State === s).length;
    replace(totals, h("span", { class: "chip ok" }, "running " + by("running")),
      h("span", { class: "chip" }, "loaded " + by("loaded")), h("span", { class: "chip" }, "stopped " + by("stopped")));
    const rows = [];
    for (const a of apps) {
      const isOpen = open.has(a.Name);
      rows.push(h("tr", { "data-app": a.Name, class: "click", onclick: () => {
        if (isOpen) open.delete(a.Name); else open.add(a.Name);
        render(last);
      } },
        h("td", { class: "dim" }, isOpen ? "▾" : "▸"),
        h("td", null, h("b", null, a.Name)),
        h("td", { "data-col": "state", class: a.State === "running" ? "st-running" : stateClass(a.State) }, a.State),
        h("td", null, a.Mode || ""), h("td", { class: "n" }, secs(a.Uptime)),
        h("td", { class: "n", "data-col": "processes" }, num(a.Processes)),
        h("td", null, a.Deps.join(", ") || "–"), h("td", null, a.VersionText || ""),
        h("td", { class: "dim", title: a.Description }, a.Description), actions(a)));
      if (isOpen) {
        const env = a.Env || {};
        rows.push(h("tr", { class: "detail" }, h("td"), h("td", { colspan: 9, style: { whiteSpace: "normal" } },
          h("div", { class: "grid" },
            h("div", null, h("h3", null, "Environment"), Object.keys(env).length ? h("div", { class: "kv mono" },
              Object.keys(env).sort().flatMap((k) => [h("span", null, k),
                h("span", null, typeof env[k] === "object" ? JSON.stringify(env[k]) : String(env[k]))]))
              : h("div", { class: "empty" }, "no environment")),
            h("div", null, h("h3", null, "Details"), h("div", { class: "kv" },
              h("span", null, "weight"), h("span", null, String(a.Weight ?? "–")),
              h("span", null, "parent"), h("span", null, a.Parent || "–"),
              h("span", null, "tags"), h("span", null, (a.Tags || []).join(", ") || "–"),
              h("span", null, "members"), h("span", { class: "toolbar" }, (a.Group || []).map((p) =>
                h("a", { class: "mono", onclick: () => ctx.openProcess(p) }, p))))))) ));
      }
    }
    if (!apps.length) rows.push(h("tr", null, h("td", { colspan: 10, class: "empty" }, "no applications")));
    tbody.replaceChildren(...rows);
  }
  const sub = subscribe("application_list", {}, (d) => { last = d; render(d); });
  return () => sub.close();
}
