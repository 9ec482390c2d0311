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
  else loadJobs(false);
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
});
