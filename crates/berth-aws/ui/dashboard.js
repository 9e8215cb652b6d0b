// berth's dashboard: polls /berth/v1/overview once a second and draws endpoints, variants,
// live charts per variant (uPlot, vendored) and recent events; polls /berth/v1/monitoring every
// five seconds and draws each endpoint's Model Monitor schedules, their executions and a chart
// of drift (or model quality) over executions. No build step, no network beyond the berth
// server that serves it.
"use strict";
(function () {
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const CHARTS = [
    { key: "invocations", title: "Invocations per second" },
    { key: "latency", title: "Model latency (ms): p50 solid, p99 dashed" },
    { key: "errors", title: "Errors (% of invocations)" },
    { key: "weights", title: "Traffic share (%) since this page opened" },
  ];
  // Exposed for tests and the curious: what was drawn last and how often the page updated.
  const state = { cards: new Map(), updates: 0, last: null, failures: 0, monitoring: null };
  window.berthDashboard = state;

  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    return Number(v).toFixed(digits);
  }

  function clock(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleTimeString();
  }

  // The average of the last `seconds` of a per-period series (null when all are empty).
  function recent(values, seconds) {
    const n = Math.max(1, Math.round(seconds / state.last.window.period));
    const picked = values.slice(-n).filter((v) => v !== null);
    if (!picked.length) return null;
    return picked.reduce((a, b) => a + b, 0) / picked.length;
  }

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  function newCard(name) {
    const card = el("article", { class: "endpoint", id: "endpoint-" + name, "data-endpoint": name });
    const head = el("div", { class: "head" });
    const table = el("table", { class: "variants" });
    table.append(
      el("thead", {}, el("tr", {}, ...[
        ["Variant", ""], ["Traffic", ""], ["Instances", "num"], ["Type", ""], ["req/s", "num"],
        ["p50 ms", "num"], ["p99 ms", "num"], ["Errors", "num"], ["CPU %", "num"], ["Mem %", "num"],
        ["Restarts", "num"],
      ].map(([t, c]) => el("th", { class: c, text: t })))),
      el("tbody"),
    );
    const ab = newAbPanel(name);
    const charts = el("div", { class: "charts" });
    const plots = {};
    for (const c of CHARTS) {
      const plot = el("div", { class: "plot", "data-chart": c.key });
      charts.append(el("div", { class: "chart" }, el("h3", { text: c.title }), plot));
      plots[c.key] = { el: plot, chart: null };
    }
    const monitor = newMonitorPanel(name);
    card.append(head, el("div", { class: "table-wrap" }, table), ab.el, monitor.el, charts);
    return { el: card, head, tbody: table.querySelector("tbody"), plots, variants: "", ab, monitor };
  }

  function renderHead(card, ep) {
    card.el.dataset.status = ep.status;
    card.head.replaceChildren(
      el("h2", { text: ep.name }),
      el("span", { class: "status " + ep.status, text: ep.status }),
      el("span", { class: "muted", text: "config " + ep.config + (ep.pending_config ? " → " + ep.pending_config : "") }),
    );
    if (ep.deployment) {
      const d = ep.deployment;
      card.head.append(el("span", { class: "deployment", text: `${d.phase}: ${d.message} (new fleet ${(d.new_fleet_share * 100).toFixed(0)}%)` }));
    }
    if (ep.failure_reason) card.head.append(el("span", { class: "reason", text: ep.failure_reason }));
  }

  // ---- the A/B panel: per production variant its traffic, labelled accuracy with its 95%
  // interval and the verdict; controls to set weights, promote a variant, roll back. Its inputs
  // live across refreshes: a weight being typed is not overwritten.

  function newAbPanel(name) {
    const rows = el("tbody");
    const status = el("span", { class: "ab-status", role: "status" });
    const setButton = el("button", { type: "button", class: "set-weights", text: "Set weights" });
    const rollBack = el("button", { type: "button", class: "roll-back", text: "Roll back", title: "Back to the weights before the last change" });
    const verdict = el("p", { class: "verdict" });
    const panel = el("section", { class: "ab", "aria-label": "A/B test of " + name },
      el("h3", { text: "A/B test" }),
      el("table", { class: "ab-variants" },
        el("thead", {}, el("tr", {}, ...[["Variant", ""], ["Traffic", "num"], ["Weight", "num"], ["Labelled", "num"], ["Accuracy (95% interval)", "num"], ["", ""]]
          .map(([t, c]) => el("th", { class: c, text: t })))),
        rows),
      el("div", { class: "ab-actions" }, setButton, rollBack, status),
      verdict);
    const ab = { el: panel, rows, status, verdict, rollBack, names: "" };
    setButton.addEventListener("click", () => {
      const weights = {};
      for (const input of rows.querySelectorAll("input.weight")) weights[input.dataset.variant] = Number(input.value);
      control(ab, name, "weights", { weights });
    });
    rollBack.addEventListener("click", () => control(ab, name, "rollback", null));
    return ab;
  }

  // Sends one experiment control; berth records it as an event.
  async function control(ab, endpoint, action, body) {
    ab.status.textContent = "…";
    ab.status.className = "ab-status";
    try {
      const r = await fetch(`/berth/v1/endpoints/${encodeURIComponent(endpoint)}/${action}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body === null ? "" : JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(answer.message || "HTTP " + r.status);
      for (const input of ab.rows.querySelectorAll("input.weight")) delete input.dataset.dirty;
      const weights = Object.entries(answer.weights).map(([v, w]) => `${v} ${w}`).join(", ");
      ab.status.textContent = `Done: ${weights}`;
      ab.status.classList.add("ok");
    } catch (e) {
      ab.status.textContent = "Not done: " + e.message;
      ab.status.classList.add("bad");
    }
  }

  function percent(v) {
    return (v * 100).toFixed(1) + "%";
  }

  function renderAb(card, ep) {
    const ab = card.ab;
    const production = ep.variants.filter((v) => !v.shadow);
    ab.el.hidden = production.length < 2;
    if (ab.el.hidden) return;
    const names = production.map((v) => v.name).join("\u0000");
    if (ab.names !== names) {
      ab.rows.replaceChildren(...production.map((v, i) => {
        const input = el("input", { type: "number", min: "0", step: "any", class: "weight", "data-variant": v.name, "aria-label": "Weight of " + v.name });
        input.addEventListener("input", () => (input.dataset.dirty = "1"));
        const promote = el("button", { type: "button", class: "promote", "data-variant": v.name, text: "Promote", title: `All traffic to ${v.name}` });
        promote.addEventListener("click", () => control(ab, ep.name, "promote", { variant: v.name }));
        return el("tr", { "data-variant": v.name },
          el("td", {}, el("span", { class: "swatch", style: "background:" + PALETTE[ep.variants.indexOf(v) % PALETTE.length] }), v.name),
          el("td", { class: "num traffic" }), el("td", { class: "num" }, input), el("td", { class: "num labelled" }), el("td", { class: "num accuracy" }), el("td", {}, promote));
      }));
      ab.names = names;
    }
    const quality = (ep.quality && ep.quality.variants) || {};
    for (const v of production) {
      const row = ab.rows.querySelector(`tr[data-variant="${CSS.escape(v.name)}"]`);
      const input = row.querySelector("input.weight");
      if (!input.dataset.dirty && document.activeElement !== input) input.value = String(v.weight);
      row.querySelector(".traffic").textContent = (v.traffic_share * 100).toFixed(0) + "%";
      const q = quality[v.name];
      row.querySelector(".labelled").textContent = q ? q.n.toLocaleString("en-US") : "–";
      row.querySelector(".accuracy").textContent = q && q.n ? `${percent(q.accuracy)} (${percent(q.ci95[0])} to ${percent(q.ci95[1])})` : "–";
    }
    ab.rollBack.disabled = !ep.can_roll_back;
    const test = ep.quality && ep.quality.test;
    ab.verdict.className = "verdict" + (test && test.decided ? " decided" : "");
    ab.verdict.dataset.test = test ? (test.decided ? "decided" : "open") : "none";
    ab.verdict.textContent = test
      ? test.verdict
      : ep.quality
        ? "No labelled answers yet: send ground truth (POST /berth/v1/endpoints/" + ep.name + "/ground-truth) to compare the variants."
        : "No data capture on this endpoint: turn it on (DataCaptureConfig) and send ground truth to compare the variants' quality.";
  }

  // ---- Model Monitor: each schedule of the endpoint, its newest executions and what they found
  // in violation, and a chart over its executions (drift distance per feature, or the
  // model-quality metrics).

  function newMonitorPanel(name) {
    const rows = el("tbody");
    const charts = el("div", { class: "charts monitor-charts" });
    const panel = el("section", { class: "monitor", "aria-label": "Model Monitor of " + name, hidden: "" },
      el("h3", { text: "Model Monitor" }),
      el("table", { class: "monitor-schedules" },
        el("thead", {}, el("tr", {}, ...["Schedule", "Type", "Status", "Last execution", "In violation"].map((t) => el("th", { text: t })))),
        rows),
      charts);
    return { el: panel, rows, charts, plots: new Map() };
  }

  function renderMonitor(card, ep) {
    const m = card.monitor;
    const schedules = ((state.monitoring && state.monitoring.schedules) || []).filter((s) => s.endpoint === ep.name);
    m.el.hidden = schedules.length === 0;
    m.rows.replaceChildren(...schedules.map((s) => {
      const last = s.executions[0];
      const lastText = last ? `${last.status} at ${clock(last.scheduled)}` : "none yet";
      return el("tr", { "data-schedule": s.name },
        el("td", { text: s.name }), el("td", { text: `${s.kind} · ${s.expression}` }), el("td", { class: "status", text: s.status }),
        el("td", { class: "last", text: lastText, title: (last && last.failure_reason) || "" }),
        el("td", { class: "violated", text: s.violated.length ? s.violated.join(", ") : "–" }));
    }));
    const keep = new Set(schedules.map((s) => s.name));
    for (const [name, plot] of m.plots) {
      if (!keep.has(name)) {
        plot.chart && plot.chart.destroy();
        plot.box.remove();
        m.plots.delete(name);
      }
    }
    for (const s of schedules) {
      const names = Object.keys(s.chart.series);
      let plot = m.plots.get(s.name);
      const key = names.join("\u0000");
      if (!plot) {
        const area = el("div", { class: "plot", "data-chart": "monitor", "data-schedule": s.name });
        plot = { box: el("div", { class: "chart" }, el("h3", { text: `${s.name}: ${s.chart.unit} per execution` }), area), area, chart: null, key: null };
        m.charts.append(plot.box);
        m.plots.set(s.name, plot);
      }
      const data = [s.chart.t, ...names.map((n) => s.chart.series[n])];
      const width = Math.max(240, plot.area.clientWidth);
      if (!plot.chart || plot.key !== key) {
        if (plot.chart) plot.chart.destroy();
        plot.area.replaceChildren();
        plot.chart = new uPlot({
          width, height: 150,
          series: [{}, ...names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true, points: { show: true } }))],
          scales: { x: { time: true, range: timeRange } },
          axes: [{ space: 60 }, { size: 48 }],
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
        }, data, plot.area);
        plot.key = key;
      } else {
        plot.chart.setData(data);
      }
      plot.data = data;
    }
  }

  async function refreshMonitoring() {
    try {
      const r = await fetch("/berth/v1/monitoring", { cache: "no-store" });
      if (r.ok) {
        state.monitoring = await r.json();
        if (state.last) renderEndpoints(state.last);
      }
    } catch (e) {
      // The overview's poll reports berth being unreachable.
    } finally {
      setTimeout(refreshMonitoring, 5000);
    }
  }

  // A multi-model variant: its loaded models and the share of calls that found theirs loaded.
  function modelsLine(m) {
    const hits = m.calls > 0 ? ` · ${((m.cache_hits / m.calls) * 100).toFixed(0)}% cache hits` : "";
    return `${m.loaded} model${m.loaded === 1 ? "" : "s"} loaded${hits}`;
  }

  function renderVariants(card, ep) {
    const rows = ep.variants.map((v, i) => {
      const s = v.series;
      const color = PALETTE[i % PALETTE.length];
      const share = el("span", { class: "share" }, el("span", { style: `width:${(v.traffic_share * 100).toFixed(1)}%;background:${color}` }));
      const errors = recent(s.error_share, 10);
      const u = v.utilization || {};
      const cells = [
        [el("span", { class: "swatch", style: "background:" + color }), v.name],
        [share, `${(v.traffic_share * 100).toFixed(0)}% (w ${v.weight})`],
        [`${v.healthy_instances}/${v.desired_instances}`],
        [v.instance_type, ...(v.models ? [el("div", { class: "muted models" }, modelsLine(v.models))] : []),
          ...(v.component_of ? [el("div", { class: "muted" }, `inference component: copies on ${v.component_of}`)] : [])],
        [num(recent(s.invocations_per_second, 10), 1)],
        [num(latest(s.model_latency_p50_ms), 2)],
        [num(latest(s.model_latency_p99_ms), 2)],
        [errors === null ? "–" : num(errors * 100, 1) + "%"],
        [num(u.cpu, 0)],
        [num(u.memory, 1)],
        [v.serverless ? `${v.restarts} · ${v.serverless.cold_starts} cold` : String(v.restarts)],
      ];
      const classes = ["variant", "", "num instances", "", "num rps", "num p50", "num p99", "num errors", "num cpu", "num mem", "num restarts"];
      return el("tr", { class: "variant-row", "data-variant": v.name }, ...cells.map((c, j) => el("td", { class: classes[j] }, ...c)));
    });
    card.tbody.replaceChildren(...rows);
  }

  function chartSeries(key, variants) {
    const series = [{}];
    variants.forEach((v, i) => {
      const stroke = PALETTE[i % PALETTE.length];
      if (key === "latency") {
        series.push({ label: v.name + " p50", stroke, width: 2, spanGaps: true });
        series.push({ label: v.name + " p99", stroke, width: 1.5, dash: [6, 4], spanGaps: true });
      } else {
        series.push({ label: v.name, stroke, width: 2, spanGaps: key !== "errors" });
      }
    });
    return series;
  }

  // Traffic shares seen at each poll, per endpoint (bandit routing moves them over time).
  const history = new Map();
  function weightHistory(ep) {
    let h = history.get(ep.name);
    if (!h) history.set(ep.name, (h = { t: [], shares: {} }));
    return h;
  }
  function recordWeights(data) {
    for (const ep of data.endpoints) {
      const h = weightHistory(ep);
      if (h.t.length && h.t[h.t.length - 1] === data.now) continue;
      h.t.push(data.now);
      for (const v of ep.variants) {
        const s = (h.shares[v.name] = h.shares[v.name] || h.t.slice(0, -1).map(() => null));
        s.push(v.traffic_share * 100);
      }
      if (h.t.length > 3600) {
        h.t.shift();
        for (const s of Object.values(h.shares)) s.shift();
      }
    }
  }

  function chartData(key, ep) {
    const t = ep.variants.length ? ep.variants[0].series.t : [];
    const data = [t];
    for (const v of ep.variants) {
      if (key === "invocations") data.push(v.series.invocations_per_second);
      if (key === "latency") data.push(v.series.model_latency_p50_ms, v.series.model_latency_p99_ms);
      if (key === "errors") data.push(v.series.error_share.map((x) => (x === null ? null : x * 100)));
    }
    if (key === "weights") {
      const h = weightHistory(ep);
      return [h.t, ...ep.variants.map((v) => h.shares[v.name] || h.t.map(() => null))];
    }
    return data;
  }

  // The x range is the data's own; one point (a page just opened) spans the minute before it
  // rather than the years uPlot would draw around a single time.
  function timeRange(u, min, max) {
    const t = u.data && u.data[0];
    if (t && t.length) [min, max] = [t[0], t[t.length - 1]];
    if (min === null || max === null || min === undefined || max === undefined) {
      const now = Date.now() / 1000;
      return [now - 60, now];
    }
    return max - min < 1 ? [max - 60, max + 1] : [min, max];
  }

  function renderCharts(card, ep) {
    const names = ep.variants.map((v) => v.name).join("\u0000");
    for (const c of CHARTS) {
      const plot = card.plots[c.key];
      const data = chartData(c.key, ep);
      const width = Math.max(240, plot.el.clientWidth);
      if (!plot.chart || card.variants !== names) {
        if (plot.chart) plot.chart.destroy();
        plot.el.replaceChildren();
        plot.chart = new uPlot({
          width, height: 150,
          series: chartSeries(c.key, ep.variants),
          scales: { x: { time: true, range: timeRange }, y: { range: (u, min, max) => [0, Math.max(max, c.key === "errors" ? 5 : 1) * 1.1] } },
          axes: [{ space: 60 }, { size: 48 }],
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
        }, data, plot.el);
      } else {
        if (Math.abs(plot.chart.width - width) > 4) plot.chart.setSize({ width, height: 150 });
        plot.chart.setData(data);
      }
      plot.data = data;
    }
    card.variants = names;
  }

  function renderEndpoints(data) {
    const filter = $("#endpoint-filter").value;
    const shown = data.endpoints.filter((e) => !filter || e.name === filter);
    const container = $("#endpoints");
    const keep = new Set(shown.map((e) => e.name));
    for (const [name, card] of state.cards) {
      if (!keep.has(name)) {
        Object.values(card.plots).forEach((p) => p.chart && p.chart.destroy());
        card.monitor.plots.forEach((p) => p.chart && p.chart.destroy());
        card.el.remove();
        state.cards.delete(name);
      }
    }
    const empty = container.querySelector(".empty");
    if (!shown.length) {
      if (!empty) container.append(el("div", { class: "empty", text: "No endpoints yet. Create one with CreateEndpoint (boto3, the SageMaker SDK or the AWS CLI)." }));
      return;
    }
    if (empty) empty.remove();
    shown.forEach((ep, i) => {
      let card = state.cards.get(ep.name);
      if (!card) {
        card = newCard(ep.name);
        state.cards.set(ep.name, card);
      }
      if (container.children[i] !== card.el) container.insertBefore(card.el, container.children[i] || null);
      renderHead(card, ep);
      renderVariants(card, ep);
      renderAb(card, ep);
      renderMonitor(card, ep);
      renderCharts(card, ep);
    });
  }

  function renderFilter(data) {
    const select = $("#endpoint-filter");
    const names = data.endpoints.map((e) => e.name);
    const have = [...select.options].slice(1).map((o) => o.value);
    if (names.join() === have.join()) return;
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((n) => el("option", { value: n, text: n })));
    select.value = names.includes(chosen) ? chosen : "";
  }

  function renderEvents(data) {
    const filter = $("#endpoint-filter").value;
    const items = data.events
      .filter((e) => !filter || e.endpoint === filter)
      .map((e) => el("li", { "data-kind": e.kind },
        el("span", { class: "when", text: clock(e.epoch) }),
        el("span", { class: "kind " + e.kind, text: e.kind }),
        el("span", { text: (e.endpoint || "berth") + (e.variant ? "/" + e.variant : "") + ": " + e.message })));
    $("#events").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: "No events yet." })]));
  }

  // The servers of a cluster on a shared store: which leads, which stand by, which are gone.
  function renderNodes(data) {
    const nodes = data.nodes || [];
    $("#cluster-panel").hidden = nodes.length === 0;
    $("#nodes").replaceChildren(...nodes.map((n) => el("li", { "data-role": n.role },
      el("span", { class: "kind " + n.role, text: n.role }),
      el("span", { text: `${n.name} ${n.address} · runs ${n.instances} instance${n.instances === 1 ? "" : "s"} · heard ${(n.silent_ms / 1000).toFixed(1)} s ago` }))));
  }

  function render(data) {
    state.last = data;
    recordWeights(data);
    renderFilter(data);
    renderEndpoints(data);
    renderEvents(data);
    renderNodes(data);
    const inService = data.endpoints.filter((e) => e.status === "InService").length;
    let rps = 0;
    for (const e of data.endpoints) for (const v of e.variants) rps += recent(v.series.invocations_per_second, 10) || 0;
    $("#summary").textContent = `${data.endpoints.length} endpoint(s), ${inService} in service, ${rps.toFixed(1)} req/s`;
    $("#updated").textContent = "updated " + clock(data.now);
    state.updates++;
  }

  async function refresh() {
    const [windowSeconds, period] = $("#window").value.split(":");
    try {
      const r = await fetch(`/berth/v1/overview?window=${windowSeconds}&period=${period}`, { cache: "no-store" });
      if (!r.ok) throw new Error("the overview answered HTTP " + r.status);
      render(await r.json());
      $("#error").hidden = true;
    } catch (e) {
      state.failures++;
      $("#error").textContent = "Cannot read from berth (" + e.message + "); retrying every second.";
      $("#error").hidden = false;
    } finally {
      setTimeout(refresh, 1000);
    }
  }

  $("#endpoint-filter").addEventListener("change", () => state.last && render(state.last));
  $("#window").addEventListener("change", () => {
    for (const card of state.cards.values()) card.variants = ""; // new x range: redraw charts
  });
  window.addEventListener("resize", () => state.last && renderEndpoints(state.last));
  refresh();
  refreshMonitoring();
})();
