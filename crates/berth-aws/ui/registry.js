// berth's model registry page: each model package group with its versions, newest first — their
// approval, when they were registered, their images, model metrics' sources and metadata. It
// reads /berth/v1/registry every 5 seconds; no network beyond the berth server that serves it.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) k === "text" ? (e.textContent = v) : e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }
  const when = (s) => new Date(s * 1000).toLocaleString();

  function metrics(m) {
    if (!m) return "–";
    const out = [];
    for (const [kind, parts] of Object.entries(m)) for (const [name, source] of Object.entries(parts || {})) out.push(`${kind}.${name}: ${source && source.S3Uri ? source.S3Uri : JSON.stringify(source)}`);
    return out.join("\n") || "–";
  }

  function render(groups) {
    const container = $("#groups");
    if (!groups.length) {
      container.replaceChildren(el("p", { class: "muted", text: "No model package group yet: CreateModelPackageGroup, then register versions (the SDK's model.register())." }));
      return;
    }
    container.replaceChildren(...groups.map((g) => el("article", { class: "group", "data-group": g.name },
      el("h2", { text: g.name }),
      el("p", { class: "muted", text: (g.description ? g.description + " · " : "") + `${g.versions.length} version(s)` }),
      el("table", { class: "candidates" },
        el("thead", {}, el("tr", {}, ...["Version", "Approval", "Registered", "Images", "Model metrics", "Metadata"].map((t) => el("th", { text: t })))),
        el("tbody", {}, ...g.versions.map((v) => el("tr", { "data-version": String(v.version), "data-approval": v.approval },
          el("td", { class: "num", text: String(v.version) }),
          el("td", { class: "approval " + v.approval, text: v.approval + (v.approval_description ? ` (${v.approval_description})` : "") }),
          el("td", { text: when(v.created) }),
          el("td", { text: v.images.join(", ") }),
          el("td", { class: "metrics", text: metrics(v.model_metrics) }),
          el("td", { text: Object.entries(v.customer_metadata || {}).map(([k, val]) => `${k}=${val}`).join(", ") || "–" }))))))));
  }

  async function refresh() {
    try {
      const r = await fetch("/berth/v1/registry", { cache: "no-store" });
      if (!r.ok) throw new Error("the registry answered HTTP " + r.status);
      render((await r.json()).groups);
      $("#error").hidden = true;
    } catch (e) {
      $("#error").textContent = "Cannot read from berth (" + e.message + ")";
      $("#error").hidden = false;
    } finally {
      setTimeout(refresh, 5000);
    }
  }
  refresh();
})();
