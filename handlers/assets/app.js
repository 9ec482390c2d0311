// Glint Worker dashboard. No build step, no dependencies. Every value from the API is rendered as text
// (textContent / createTextNode), never as HTML; links are built with URL() and only http(s) is accepted.
"use strict";

const state = { status: "", cursor: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function apiKey() { return sessionStorage.getItem("glint.apikey") || ""; }

function notice(text, isError) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = isError ? "notice error" : "notice";
  n.hidden = !text;
}

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  if (apiKey() && !o.headers["X-API-Key"]) o.headers["X-API-Key"] = apiKey();
  const r = await fetch(path, o);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const msg = body && body.error ? body.error.message + " (" + body.error.code + ")" : "HTTP " + r.status;
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return body;
}

function secs(v) {
  if (v === null || v === undefined) return "";
  if (v < 1) return Math.round(v * 1000) + " ms";
  if (v < 120) return v.toFixed(1) + " s";
  return Math.round(v / 60) + " min";
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString();
}

// "MM:SS" or "H:MM:SS" -> seconds; null when malformed.
function tsSeconds(ts) {
  if (typeof ts !== "string" || !/^\d{1,2}(:\d{2}){1,2}$/.test(ts)) return null;
  return ts.split(":").reduce((acc, p) => acc * 60 + parseInt(p, 10), 0);
}

// The video at a moment: the job's own URL with t=Ns (YouTube's &t=); null unless http(s).
function videoAt(videoUrl, seconds) {
  let u;
  try { u = new URL(videoUrl); } catch (e) { return null; }
  if (u.protocol !== "https:" && u.protocol !== "http:") return null;
  u.searchParams.set("t", seconds + "s");
  return u.toString();
}

// ---- charts: plain SVG built with createElementNS (the CSP allows no inline style; colours come from style.css) ----

const SVGNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// A round axis maximum: 1, 2, 5, 10, 20, 50 …
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function hhmm(t) {
  const d = new Date(t * 1000);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

const CHART = { w: 560, h: 150, left: 34, right: 8, top: 8, bottom: 20 };

// Axes, horizontal grid and time labels shared by both charts; returns the plot's geometry.
function chartFrame(root, minutes, max) {
  const c = CHART, pw = c.w - c.left - c.right, ph = c.h - c.top - c.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = c.top + ph - f * ph;
    root.appendChild(svg("line", { class: "grid", x1: c.left, x2: c.w - c.right, y1: y, y2: y }));
    root.appendChild(svg("text", { class: "axis", x: c.left - 4, y: y + 4, "text-anchor": "end" }, String(+(f * max).toFixed(1))));
  }
  const n = minutes.length;
  if (n > 0)
    for (const [i, x, anchor] of [[0, c.left, "start"], [Math.floor(n / 2), c.left + pw / 2, "middle"], [n - 1, c.w - c.right, "end"]])
      root.appendChild(svg("text", { class: "axis", x: x, y: c.h - 5, "text-anchor": anchor }, hhmm(minutes[i].t)));
  return { x0: c.left, y0: c.top + ph, pw: pw, ph: ph, step: pw / n };
}

const OUTCOMES = ["completed", "failed", "retried", "cancelled"];

// Stacked bars: jobs this worker finished per minute, by outcome.
function throughputChart(minutes) {
  const max = niceMax(Math.max(0, ...minutes.map((m) => OUTCOMES.reduce((a, o) => a + (m[o] || 0), 0))));
  const root = svg("svg", { id: "chart-jobs", class: "chart", viewBox: "0 0 " + CHART.w + " " + CHART.h, role: "img",
    "aria-label": "jobs finished per minute by outcome, last hour" });
  const g = chartFrame(root, minutes, max);
  minutes.forEach((m, i) => {
    let y = g.y0;
    for (const o of OUTCOMES) {
      const v = m[o] || 0;
      if (!v) continue;
      const h = v / max * g.ph;
      y -= h;
      root.appendChild(svg("rect", { class: "bar " + o, x: g.x0 + i * g.step + 1, y: y, width: Math.max(1, g.step - 2), height: h,
        "data-minute": m.t, "data-outcome": o, "data-value": v }, svg("title", {}, hhmm(m.t) + " " + o + ": " + v)));
    }
  });
  return root;
}

// A line through the queue-depth samples (minutes without a sample leave a gap).
function queueChart(minutes) {
  const vals = minutes.map((m) => (typeof m.queue_depth === "number" ? m.queue_depth : null));
  const max = niceMax(Math.max(0, ...vals.filter((v) => v !== null)));
  const root = svg("svg", { id: "chart-queue", class: "chart", viewBox: "0 0 " + CHART.w + " " + CHART.h, role: "img",
    "aria-label": "queue depth, last hour" });
  const g = chartFrame(root, minutes, max);
  let d = "", pen = false;
  vals.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = g.x0 + (i + 0.5) * g.step, y = g.y0 - v / max * g.ph;
    d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
    pen = true;
    root.appendChild(svg("circle", { class: "point", cx: x, cy: y, r: 2, "data-minute": minutes[i].t, "data-value": v },
      svg("title", {}, hhmm(minutes[i].t) + " queue " + v)));
  });
  if (d) root.insertBefore(svg("path", { class: "line", d: d }), root.firstChild.nextSibling);
  return root;
}

function legend(items) {
  return el("div", { class: "legend" }, ...items.map(([cls, label]) => el("span", {}, el("i", { class: "swatch " + cls }), label)));
}

async function loadHistory() {
  const box = document.getElementById("charts");
  if (!apiKey()) { box.hidden = true; return; }
  let h;
  try {
    h = await api("/worker/history");
  } catch (e) {
    box.hidden = true;
    return;
  }
  const minutes = Array.isArray(h.minutes) ? h.minutes : [];
  const total = (o) => minutes.reduce((a, m) => a + (m[o] || 0), 0);
  box.replaceChildren(
    el("div", { class: "card chartcard" }, el("h2", {}, "Jobs finished per minute · last hour"),
      throughputChart(minutes), legend(OUTCOMES.map((o) => [o, o + " " + total(o)]))),
    el("div", { class: "card chartcard" }, el("h2", {}, "Queue depth · last hour"), queueChart(minutes),
      el("div", { class: "legend muted" }, "PENDING jobs, sampled by worker " + String(h.worker_id || ""))));
  box.hidden = false;
}

// The job's stages as a waterfall, in pipeline order, each bar starting where the previous one ended.
const STAGES = [["metadata", "metadata"], ["audio", "audio"], ["download", "download"], ["scenes", "scenes"],
  ["upload", "upload"], ["file_processing", "processing"], ["analyze", "analysis"]];

function waterfall(timings) {
  const rows = STAGES.filter(([k]) => typeof timings[k] === "number" && timings[k] >= 0).map(([k, label]) => [k, label, timings[k]]);
  if (!rows.length) return null;
  const sum = rows.reduce((a, r) => a + r[2], 0);
  const total = typeof timings.total === "number" && timings.total > sum ? timings.total : sum;
  if (total - sum > 0.001) rows.push(["other", "other", total - sum]);
  const W = 640, label = 90, right = 70, rowH = 22, pw = W - label - right, H = rows.length * rowH + 22;
  const root = svg("svg", { id: "waterfall", class: "chart", viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-label": "time per stage" });
  const scale = total > 0 ? pw / total : 0;
  let at = 0;
  rows.forEach(([k, name, v], i) => {
    const y = i * rowH + 4;
    root.appendChild(svg("text", { class: "axis", x: label - 6, y: y + 13, "text-anchor": "end" }, name));
    root.appendChild(svg("rect", { class: "stage " + k, x: label + at * scale, y: y, width: Math.max(1, v * scale), height: rowH - 6,
      "data-stage": k, "data-seconds": v }, svg("title", {}, name + ": " + secs(v))));
    root.appendChild(svg("text", { class: "axis", x: label + (at + v) * scale + 4, y: y + 13 }, secs(v)));
    at += v;
  });
  const y = rows.length * rowH + 4;
  root.appendChild(svg("line", { class: "grid", x1: label, x2: label + pw, y1: y, y2: y }));
  root.appendChild(svg("text", { class: "axis", x: label, y: y + 14 }, "0"));
  root.appendChild(svg("text", { class: "axis", x: label + pw, y: y + 14, "text-anchor": "end" }, "total " + secs(total)));
  return root;
}

async function loadHealth() {
  const box = document.getElementById("health");
  try {
    const r = await fetch("/health");
    const h = await r.json();
    box.replaceChildren(
      el("span", { class: h.status === "healthy" ? "ok" : "bad" }, h.status),
      " · " + h.active_jobs + "/" + h.max_concurrent + " active · queue " + h.queue_depth +
        (h.queue_depth > 0 ? " (oldest " + secs(h.oldest_pending_s) + ")" : "") + " · v" + h.version + " · " + h.worker_id);
  } catch (e) {
    box.replaceChildren(el("span", { class: "bad" }, "unreachable"));
  }
}

// Asks for the API key every time (prefilled with the one in use): the question doubles as the confirmation.
async function cancelJob(id) {
  const key = window.prompt("Cancel job " + id + "? Its credits are refunded.\nAPI key (WORKER_API_KEY):", apiKey());
  if (!key) return;
  try {
    const r = await api("/worker/jobs/" + encodeURIComponent(id) + "/cancel", { method: "POST", headers: { "X-API-Key": key } });
    notice("Job " + r.id + " is " + r.status + ".", false);
  } catch (e) {
    notice("Cancel failed: " + e.message, true);
  }
  route();
}

function cancelButton(job) {
  if (job.status !== "PENDING" && job.status !== "PROCESSING") return null;
  return el("button", { type: "button", class: "cancel", "data-cancel": job.id, onclick: () => cancelJob(job.id) }, "Cancel");
}

// The same confirmation as cancel: a retry charges the user's credits again.
async function retryJob(id) {
  const key = window.prompt("Retry job " + id + "? It is charged again (refunded if it fails again).\nAPI key (WORKER_API_KEY):",
    apiKey());
  if (!key) return;
  try {
    const r = await api("/worker/jobs/" + encodeURIComponent(id) + "/retry", { method: "POST", headers: { "X-API-Key": key } });
    notice("Job " + r.id + " is " + r.status + " again (" + r.credits_charged + " credit(s) charged).", false);
  } catch (e) {
    notice("Retry failed: " + e.message, true);
  }
  route();
}

function retryButton(job) {
  if (job.status !== "FAILED" && job.status !== "CANCELLED") return null;
  return el("button", { type: "button", class: "retry", "data-retry": job.id, onclick: () => retryJob(job.id) }, "Retry");
}

function jobRow(j) {
  const label = j.title || j.video_url;
  return el("tr", { "data-id": j.id },
    el("td", {}, when(j.created_at)),
    el("td", {}, el("span", { class: "status " + j.status }, j.status)),
    el("td", {}, j.stage || ""),
    el("td", {}, j.mode),
    el("td", {}, el("a", { href: "#/job/" + encodeURIComponent(j.id) }, label),
      j.error_code ? el("div", { class: "muted" }, j.error_code) : null),
    el("td", {}, secs(j.wait_s)),
    el("td", {}, secs(j.run_s)),
    el("td", {}, cancelButton(j)));
}

async function loadJobs(append) {
  const tbody = document.querySelector("#jobs tbody");
  const older = document.getElementById("older");
  if (!apiKey()) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "Enter the API key above to list jobs.")));
    older.hidden = true;
    return;
  }
  const q = new URLSearchParams({ limit: "50" });
  if (state.status) q.set("status", state.status);
  if (append && state.cursor) q.set("before", state.cursor);
  try {
    const page = await api("/worker/jobs?" + q.toString());
    const rows = page.jobs.map(jobRow);
    if (append) rows.forEach((r) => tbody.appendChild(r));
    else tbody.replaceChildren(...rows);
    if (!append && rows.length === 0)
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No jobs.")));
    state.cursor = page.next;
    older.hidden = !page.next;
  } catch (e) {
    notice("Could not list jobs: " + e.message, true);
  }
}

function section(title, ...children) {
  return el("div", { class: "card" }, el("h2", {}, title), ...children);
}

function timelineList(job, items) {
  return el("ol", { class: "timeline" }, ...items.map((t) => {
    const s = tsSeconds(t.timestamp);
    const href = s === null ? null : videoAt(job.video_url, s);
    const stamp = href ? el("a", { class: "ts", href: href, target: "_blank", rel: "noopener noreferrer" }, t.timestamp)
                       : el("span", { class: "ts" }, String(t.timestamp));
    const details = Array.isArray(t.details) && t.details.length
      ? el("ul", {}, ...t.details.map((d) => el("li", {}, String(d)))) : null;
    return el("li", {}, stamp, String(t.description || ""), details);
  }));
}

function visualAudit(job, items) {
  return el("table", { class: "visual" },
    el("thead", {}, el("tr", {}, el("th", {}, "time"), el("th", {}, "type"), el("th", {}, "detail"))),
    el("tbody", {}, ...items.map((v) => {
      const s = tsSeconds(v.timestamp);
      const href = s === null ? null : videoAt(job.video_url, s);
      return el("tr", {},
        el("td", {}, href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, v.timestamp) : String(v.timestamp)),
        el("td", {}, String(v.type || "")), el("td", {}, String(v.detail || "")));
    })));
}

function jobMeta(j) {
  const rows = [["status", j.status + (j.stage ? " (stage " + j.stage + ")" : "")], ["mode", j.mode],
    ["video", j.video_url], ["attempts", j.attempts + "/" + j.max_attempts], ["credits", String(j.credits_charged)],
    ["created", when(j.created_at)], ["started", when(j.started_at)], ["finished", when(j.finished_at)]];
  if (j.model) rows.push(["model", j.model]);
  if (j.usage && typeof j.usage.cost_usd === "number") rows.push(["cost", "$" + j.usage.cost_usd.toFixed(4) + " (estimated)"]);
  if (j.error) rows.push(["error", j.error.code + ": " + j.error.message]);
  return el("dl", { class: "meta" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "")]));
}

async function showJob(id) {
  const view = document.getElementById("job-view");
  view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  let j;
  try {
    j = await api("/worker/jobs/" + encodeURIComponent(id));
  } catch (e) {
    view.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← all jobs")), el("p", { class: "notice error" }, e.message));
    return;
  }
  const r = j.result || {};
  const parts = [el("p", {}, el("a", { href: "#/" }, "← all jobs")),
    section(r.title || "Job " + j.id, jobMeta(j), cancelButton(j), retryButton(j))];
  const wf = j.timings && typeof j.timings === "object" ? waterfall(j.timings) : null;
  if (wf) parts.push(section("Where the time went", wf));
  if (r.summary) parts.push(section("Summary", el("p", { id: "summary" }, String(r.summary))));
  if (Array.isArray(r.keyTakeaways) && r.keyTakeaways.length)
    parts.push(section("Key takeaways", el("ul", { id: "takeaways" }, ...r.keyTakeaways.map((t) => el("li", {}, String(t))))));
  if (Array.isArray(r.timeline) && r.timeline.length) parts.push(section("Timeline", timelineList(j, r.timeline)));
  if (Array.isArray(r.keywords) && r.keywords.length)
    parts.push(section("Keywords", el("div", { class: "keywords" }, ...r.keywords.map((k) => el("span", {}, String(k))))));
  if (Array.isArray(r.visualAudit) && r.visualAudit.length) parts.push(section("Visual audit", visualAudit(j, r.visualAudit)));
  view.replaceChildren(...parts);
}

function route() {
  const m = location.hash.match(/^#\/job\/([0-9a-fA-F-]{36})$/);
  document.getElementById("list-view").hidden = !!m;
  document.getElementById("job-view").hidden = !m;
  loadHealth();
  if (m) showJob(m[1]);
  else {
    loadJobs(false);
    loadHistory();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("apikey").value = apiKey();
  document.getElementById("keyform").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("glint.apikey", document.getElementById("apikey").value.trim());
    notice("", false);
    route();
  });
  document.getElementById("status-filter").addEventListener("change", (e) => {
    state.status = e.target.value;
    loadJobs(false);
  });
  document.getElementById("refresh").addEventListener("click", () => route());
  document.getElementById("older").addEventListener("click", () => loadJobs(true));
  window.addEventListener("hashchange", route);
  route();
  setInterval(loadHealth, 5000);
  setInterval(() => { if (!document.getElementById("list-view").hidden) loadHistory(); }, 30000);
});
