// The admin page /ui: polls /ui/data once a second and draws it. No
// framework, no outside asset; every text goes in through textContent, so a
// service or route name is never read as markup. The last data drawn stays in
// window.hmsUi ({updates, data}) for whoever checks the page against it.
"use strict";

const POLL_MS = 1000;
const SPARK_POINTS = 60;

const state = { updates: 0, data: null, spark: [] };
window.hmsUi = state;

const fmt = {
  count: (v) => (v === undefined || v === null ? "–" : String(v)),
  rate: (v) => (v === undefined || v === null ? "–" : v.toFixed(1)),
  ms: (v) => (v === undefined || v === null ? "–" : v.toFixed(2)),
  seconds: (ms) => (ms / 1000).toFixed(1) + " s",
  time: (unixMs) => new Date(unixMs).toISOString().slice(11, 23),
};

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// One table row: cells is a list of [key, text, class].
function row(key, cells) {
  const tr = el("tr");
  tr.dataset.key = key;
  for (const [k, text, cls] of cells) {
    const td = el("td", text, cls);
    td.dataset.k = k;
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const cols = document.querySelectorAll("#" + id + " thead th").length;
    const td = el("td", "none", "empty");
    td.colSpan = cols;
    body.appendChild(el("tr")).appendChild(td);
  }
}

function drawRoutes(d) {
  fill("routes", d.routes.map((r) =>
    row(r.service + " " + r.route, [
      ["service", r.service],
      ["route", r.route, "mono"],
      ["req_per_s", fmt.rate(r.req_per_s), "n"],
      ["p50_ms", fmt.ms(r.p50_ms), "n"],
      ["p90_ms", fmt.ms(r.p90_ms), "n"],
      ["p99_ms", fmt.ms(r.p99_ms), "n"],
      ["errors_4xx_per_s", fmt.rate(r.errors_4xx_per_s), "n" + (r.errors_4xx_per_s > 0 ? " warn" : "")],
      ["errors_5xx_per_s", fmt.rate(r.errors_5xx_per_s), "n" + (r.errors_5xx_per_s > 0 ? " bad" : "")],
      ["requests", fmt.count(r.requests), "n"],
      ["errors_4xx", fmt.count(r.errors_4xx), "n"],
      ["errors_5xx", fmt.count(r.errors_5xx), "n"],
      ["rate_limit", r.rate_limit || "–"],
      ["tokens_left", fmt.count(r.tokens_left), "n" + (r.tokens_left === 0 ? " bad" : "")],
    ])));
  const u = d.unmatched;
  document.getElementById("unmatched").textContent =
    "Requests no route matched: " + u.requests + " (" + fmt.rate(u.req_per_s) + "/s)";
}

function drawBreakers(d) {
  fill("breakers", d.breakers.map((b) =>
    row(b.service, [
      ["service", b.service],
      ["state", b.state, "state " + b.state],
      ["consecutive_failures", fmt.count(b.consecutive_failures), "n"],
      ["next_probe", b.state === "open" ? fmt.seconds(b.next_probe_ms) : "–", "n"],
      ["opened_total", fmt.count(b.opened_total), "n"],
    ])));
}

function drawCores(d) {
  fill("cores", d.cores.map((c) => {
    const tr = row(String(c.core), [
      ["core", String(c.core)],
      ["req_per_s", fmt.rate(c.req_per_s), "n"],
      ["cpu_pct", c.cpu_pct === null ? "–" : c.cpu_pct.toFixed(1) + " %", "bar"],
      ["connections", fmt.count(c.connections), "n"],
      ["requests", fmt.count(c.requests), "n"],
      ["snapshot", fmt.count(c.snapshot), "n"],
    ]);
    // The CPU cell's background is its share of one CPU.
    const pct = Math.max(0, Math.min(100, c.cpu_pct || 0));
    tr.children[2].style.setProperty("--pct", pct + "%");
    return tr;
  }));
}

function drawEndpoints(d) {
  fill("endpoints", d.endpoints.map((e) =>
    row(e.service + " " + e.address, [
      ["service", e.service],
      ["address", e.address, "mono"],
      ["health", e.check_failing ? "check failing" : "ok", e.check_failing ? "bad" : "ok"],
      ["ejected", e.ejected ? "for " + fmt.seconds(e.ejected_for_ms) : "no", e.ejected ? "bad" : ""],
      ["ejections_total", fmt.count(e.ejections_total), "n"],
    ])));
}

function drawRefusals(d) {
  fill("refusals", d.refusals.map((r) =>
    row(r.trace_id, [
      ["time", fmt.time(r.unix_ms), "mono"],
      ["core", String(r.core), "n"],
      ["status", String(r.status), "n " + (r.status >= 500 ? "bad" : "warn")],
      ["reason", r.reason, "mono"],
      ["method", r.method],
      ["service", r.service === "none" ? "–" : r.service],
      ["route", r.route === "none" ? "–" : r.route, "mono"],
      ["trace_id", r.trace_id, "mono small"],
    ])));
}

function drawSpark(d) {
  let total = null;
  for (const c of d.cores) if (c.req_per_s !== null) total = (total || 0) + c.req_per_s;
  document.getElementById("total-rps").textContent = fmt.rate(total);
  state.spark.push(total || 0);
  if (state.spark.length > SPARK_POINTS) state.spark.shift();
  const max = Math.max(1, ...state.spark);
  const step = 300 / (SPARK_POINTS - 1);
  const points = state.spark.map((v, i) =>
    (i * step).toFixed(1) + "," + (38 - (v / max) * 36).toFixed(1));
  document.getElementById("spark-line").setAttribute("points", points.join(" "));
}

function draw(d) {
  document.getElementById("role").textContent = d.role;
  document.getElementById("snapshot").textContent = String(d.snapshot);
  const cfg = document.getElementById("config");
  cfg.textContent = d.config;
  cfg.className = d.config === "ok" ? "ok" : "bad";
  document.getElementById("window").textContent =
    d.window_s === null ? "–" : d.window_s.toFixed(1) + " s";
  document.getElementById("updated").textContent = fmt.time(d.unix_ms);
  drawRoutes(d);
  drawBreakers(d);
  drawCores(d);
  drawEndpoints(d);
  drawRefusals(d);
  drawSpark(d);
}

function setLive(ok, text) {
  document.getElementById("live").className = "dot " + (ok ? "up" : "down");
  document.getElementById("state").textContent = text;
}

async function poll() {
  try {
    const r = await fetch("/ui/data", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const d = await r.json();
    draw(d);
    // Data and drawing change together: a reader sees the numbers drawn.
    state.data = d;
    state.updates += 1;
    document.body.dataset.updates = String(state.updates);
    setLive(true, "live");
  } catch (e) {
    setLive(false, "gateway unreachable (" + e.message + "), retrying");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
