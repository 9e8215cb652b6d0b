// berth's inference recommendations report: one job's candidates, each a curve of its p95
// latency against the throughput it answered (one point per load step), the threshold as a
// dashed line, the recommendation marked. The chart is plain SVG, so it downloads as SVG or,
// drawn onto a canvas, as PNG. No network beyond the berth server that serves it.
"use strict";
(function () {
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const SVG = "http://www.w3.org/2000/svg";
  const W = 760, H = 380, M = { left: 64, right: 170, top: 20, bottom: 48 };
  const $ = (sel) => document.querySelector(sel);
  const state = { job: null, report: null };
  window.berthReport = state;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) k === "text" ? (e.textContent = v) : e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Round axis steps: 1, 2 or 5 times a power of ten.
  function ticks(max, count) {
    const raw = max / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const out = [];
    for (let v = 0; v <= max + step / 2; v += step) out.push(v);
    return out;
  }

  function label(c) {
    const env = Object.entries(c.environment || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return `${c.instance_count} × ${c.instance_type}${env ? " " + env : ""}`;
  }

  function chart(report) {
    const points = report.candidates.flatMap((c) => c.curve.filter((p) => p.p95_ms !== null));
    const threshold = report.thresholds.find((t) => t.percentile === 95) || report.thresholds[0];
    const maxX = Math.max(1, ...points.map((p) => p.achieved_rate)) * 1.05;
    const maxY = Math.max(threshold ? threshold.ms * 1.2 : 1, ...points.map((p) => Math.min(p.p95_ms, threshold ? threshold.ms * 4 : p.p95_ms))) * 1.05;
    const x = (v) => M.left + (v / maxX) * (W - M.left - M.right);
    const y = (v) => H - M.bottom - (Math.min(v, maxY) / maxY) * (H - M.top - M.bottom);
    const root = svg("svg", { xmlns: SVG, viewBox: `0 0 ${W} ${H}`, width: W, height: H, "font-family": "sans-serif", "font-size": "12" });
    root.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "white" }));
    for (const v of ticks(maxX, 6)) {
      root.append(svg("line", { x1: x(v), x2: x(v), y1: M.top, y2: H - M.bottom, stroke: "#e5e7eb" }));
      root.append(svg("text", { x: x(v), y: H - M.bottom + 16, "text-anchor": "middle", fill: "#374151" }, String(Math.round(v))));
    }
    for (const v of ticks(maxY, 5)) {
      root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), stroke: "#e5e7eb" }));
      root.append(svg("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end", fill: "#374151" }, Number.isInteger(Math.round(v * 1e6) / 1e6) ? String(Math.round(v)) : v.toFixed(1)));
    }
    root.append(svg("text", { x: (M.left + W - M.right) / 2, y: H - 10, "text-anchor": "middle", fill: "#111827" }, "throughput answered (requests/s)"));
    root.append(svg("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle", fill: "#111827", transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})` }, "p95 latency (ms)"));
    if (threshold) {
      root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(threshold.ms), y2: y(threshold.ms), stroke: "#6b7280", "stroke-dasharray": "6 4", "data-threshold": threshold.ms }));
      root.append(svg("text", { x: W - M.right - 4, y: y(threshold.ms) - 4, "text-anchor": "end", fill: "#6b7280" }, `P${threshold.percentile} ≤ ${threshold.ms} ms`));
    }
    report.candidates.forEach((c, i) => {
      const color = PALETTE[i % PALETTE.length];
      const curve = c.curve.filter((p) => p.p95_ms !== null).sort((a, b) => a.achieved_rate - b.achieved_rate);
      const g = svg("g", { class: "candidate", "data-candidate": label(c), "data-recommended": String(c.recommended), "data-top": String(c.top) });
      if (curve.length) {
        g.append(svg("polyline", { points: curve.map((p) => `${x(p.achieved_rate)},${y(p.p95_ms)}`).join(" "), fill: "none", stroke: color, "stroke-width": c.top ? 3.5 : 2 }));
        for (const p of curve) g.append(svg("circle", { cx: x(p.achieved_rate), cy: y(p.p95_ms), r: p.kept ? 3.5 : 2.5, fill: p.kept ? color : "white", stroke: color }));
      }
      if (c.top && c.metrics) {
        const best = curve.filter((p) => p.kept).sort((a, b) => b.achieved_rate - a.achieved_rate)[0];
        if (best) {
          g.append(svg("circle", { cx: x(best.achieved_rate), cy: y(best.p95_ms), r: 8, fill: "none", stroke: "#111827", "stroke-width": 2, class: "recommended-point" }));
          g.append(svg("text", { x: x(best.achieved_rate) + 10, y: y(best.p95_ms) - 10, fill: "#111827", "font-weight": "bold" }, "recommended"));
        }
      }
      const ly = M.top + 8 + i * 20;
      g.append(svg("line", { x1: W - M.right + 12, x2: W - M.right + 32, y1: ly, y2: ly, stroke: color, "stroke-width": c.top ? 3.5 : 2 }));
      g.append(svg("text", { x: W - M.right + 36, y: ly + 4, fill: "#111827", "font-weight": c.top ? "bold" : "normal" }, label(c) + (c.top ? " ★" : "")));
      root.append(g);
    });
    return root;
  }

  function table(report) {
    const money = (v) => (v === undefined || v === null ? "–" : "$" + v.toFixed(4));
    $("#candidates").replaceChildren(...report.candidates.map((c) => {
      const m = c.metrics || {};
      const note = c.top ? "recommended" : c.recommended ? "kept the thresholds" : c.failure_reason || (c.status === "COMPLETED" ? "never kept the thresholds" : "");
      return el("tr", { "data-candidate": label(c), class: c.top ? "top" : "" },
        el("td", { text: label(c) }), el("td", { text: c.status }),
        el("td", { class: "num", text: m.max_invocations !== undefined ? m.max_invocations.toLocaleString("en-US") : "–" }),
        el("td", { class: "num", text: m.model_latency_ms !== undefined ? m.model_latency_ms + " ms" : "–" }),
        el("td", { class: "num", text: money(m.cost_per_hour) }),
        el("td", { class: "num", text: m.cost_per_inference !== undefined ? money(m.cost_per_inference * 1e6) : "–" }),
        el("td", { class: "num", text: m.model_setup_time_s !== undefined ? m.model_setup_time_s + " s" : "–" }),
        el("td", { text: note }));
    }));
  }

  // The chart as an SVG document's text, and as a PNG data URL (drawn onto a canvas).
  state.svgText = () => {
    const node = $("#chart svg");
    return node ? '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(node) : null;
  };
  state.pngDataUrl = () => new Promise((resolve, reject) => {
    const text = state.svgText();
    if (!text) return reject(new Error("no chart"));
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = [W * 2, H * 2];
      const ctx = canvas.getContext("2d");
      ctx.scale(2, 2);
      ctx.drawImage(image, 0, 0, W, H);
      resolve(canvas.toDataURL("image/png"));
    };
    image.onerror = () => reject(new Error("the chart could not be drawn"));
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  });

  function download(href, name) {
    const a = el("a", { href, download: name });
    document.body.append(a);
    a.click();
    a.remove();
  }

  $("#download-svg").addEventListener("click", () => {
    const text = state.svgText();
    if (text) download("data:image/svg+xml;charset=utf-8," + encodeURIComponent(text), `${state.job}.svg`);
  });
  $("#download-png").addEventListener("click", () => state.pngDataUrl().then((url) => download(url, `${state.job}.png`)).catch(showError));

  function showError(e) {
    $("#error").textContent = "Cannot read from berth (" + e.message + ")";
    $("#error").hidden = false;
  }

  async function show(job) {
    state.job = job;
    history.replaceState(null, "", "?job=" + encodeURIComponent(job));
    const r = await fetch("/berth/v1/recommendations/" + encodeURIComponent(job), { cache: "no-store" });
    if (!r.ok) throw new Error("the report answered HTTP " + r.status);
    const report = await r.json();
    state.report = report;
    const recommended = report.candidates.filter((c) => c.recommended).length;
    $("#summary").textContent = `${report.name}: ${report.type} job on model ${report.model}, ${report.status}; ` +
      `${recommended} of ${report.candidates.length} candidate(s) kept the thresholds` + (report.failure_reason ? ` — ${report.failure_reason}` : "");
    $("#chart").replaceChildren(chart(report));
    table(report);
    $("#error").hidden = true;
    // A job still running changes: look again.
    if (["PENDING", "IN_PROGRESS", "STOPPING"].includes(report.status)) setTimeout(() => show(job).catch(showError), 3000);
  }

  async function start() {
    const r = await fetch("/berth/v1/recommendations", { cache: "no-store" });
    if (!r.ok) throw new Error("the job list answered HTTP " + r.status);
    const { jobs } = await r.json();
    const wanted = new URLSearchParams(location.search).get("job");
    const select = $("#job");
    select.replaceChildren(...jobs.map((j) => el("option", { value: j.name, text: `${j.name} (${j.status})` })));
    if (!jobs.length) {
      $("#summary").textContent = "No inference recommendations job yet: create one with CreateInferenceRecommendationsJob (or the SDK's right_size()).";
      return;
    }
    select.value = jobs.some((j) => j.name === wanted) ? wanted : jobs[0].name;
    select.addEventListener("change", () => show(select.value).catch(showError));
    await show(select.value);
  }

  start().catch(showError);
})();
