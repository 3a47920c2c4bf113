// The wfhost dashboard: plain JavaScript over the JSON API, no framework.
// Every value from the API reaches the page through textContent or an
// attribute, never as markup, so a task's output is shown as text.
"use strict";

const KEY = "wfhost-api-key";
const PAGE = 50;
const $ = (selector) => document.querySelector(selector);

/** An element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

/** Calls the API with the tab's key; errors carry the API's message. */
async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
  });
  if (response.status === 401) {
    logout("Your key was refused.");
    throw new Error("unauthorized");
  }
  const body = parseExact(await response.text());
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body;
}

/**
 * JSON with every number as the API wrote it: one a double would change (an
 * integer beyond 2^53, a decimal of more digits than a double keeps) is kept
 * as its own text (`JSON.rawJSON`), so a result shows, and stringifies,
 * exactly; every other number stays a number. Null where the body is not
 * JSON.
 */
function parseExact(text) {
  const raw = typeof JSON.rawJSON === "function";
  try {
    return JSON.parse(text, (key, value, context) =>
      raw && typeof value === "number" && context?.source !== undefined &&
        significant(context.source) !== significant(String(value))
        ? JSON.rawJSON(context.source)
        : value);
  } catch {
    return null;
  }
}

/** A number's significant digits: `0.0250e3` and `25` both give `25`. */
function significant(number) {
  const mantissa = number.replace(/^-/, "").replace(/[eE].*$/, "").replace(".", "");
  return mantissa.replace(/^0+/, "").replace(/0+$/, "");
}

function time(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "";
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

// What a sleeping or waiting step waits for, in words (DESIGN §15).
function pauseText(step) {
  if (step.status === "sleeping") return `asleep until ${time(step.due_at_ms)}`;
  if (step.status !== "waiting") return "";
  const timeout = step.due_at_ms ? `, timeout ${time(step.due_at_ms)}` : "";
  return `waiting for signal ${step.kwargs.signal} since ${time(step.started_at_ms)}${timeout}`;
}

function statusText(status) {
  return el("span", { class: `status ${status}` }, status);
}

// ---------------------------------------------------------------- login

function logout(message = "") {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem("wfhost-admin");
  stopFollowing();
  $("#nav").hidden = true;
  $("#view").replaceChildren();
  $("#login").hidden = false;
  $("#login-error").textContent = message;
}

async function login(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#key").value);
  $("#key").value = "";
  await start();
}

/** Asks who the key is, then shows the page the address names. */
async function start() {
  try {
    const who = await api("/v1/whoami");
    sessionStorage.setItem("wfhost-who", who.admin ? "operator (every tenant)" : who.tenant);
    sessionStorage.setItem("wfhost-admin", who.admin ? "1" : "");
    route();
  } catch (err) {
    if (err.message !== "unauthorized") logout(err.message);
  }
}

const isAdmin = () => sessionStorage.getItem("wfhost-admin") === "1";

/** The API path of workflow `id` (of `tenant`, for the operator). */
function workflowPath(id, tenant, rest = "", query = "") {
  const params = new URLSearchParams(query);
  if (tenant) params.set("tenant", tenant);
  const q = params.toString();
  return `/v1/workflows/${encodeURIComponent(id)}${rest}${q ? `?${q}` : ""}`;
}

// ---------------------------------------------------------------- list

const list = { status: "", search: "", pages: [null] };

async function showList() {
  const view = $("#view");
  const status = el("select", { id: "status-filter" },
    ...["", "running", "cut_off", "succeeded", "failed", "cancelled"].map((s) =>
      el("option", { value: s }, s || "any status")));
  status.value = list.status;
  status.addEventListener("change", () => { list.status = status.value; list.pages = [null]; showList(); });
  const search = el("input", { id: "search", type: "search", placeholder: "search by id or task" });
  search.value = list.search;
  search.addEventListener("change", () => { list.search = search.value; showList(); });
  const rows = el("tbody", { id: "workflows" });
  const headings = [...(isAdmin() ? ["tenant"] : []), "id", "status", "created", "updated", "result or error"];
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))),
    rows);
  const after = list.pages[list.pages.length - 1];
  const query = new URLSearchParams({ limit: PAGE });
  if (list.status) query.set("status", list.status);
  if (list.search.trim()) query.set("q", list.search.trim());
  if (after) query.set("after", after);
  const prev = el("button", { id: "prev", type: "button", onclick: () => { list.pages.pop(); showList(); } }, "‹ newer");
  const next = el("button", { id: "next", type: "button" }, "older ›");
  prev.disabled = list.pages.length < 2;
  view.replaceChildren(el("div", { class: "toolbar" }, status, search, prev, next), table);
  let page;
  try {
    page = await api(`/v1/workflows?${query}`);
  } catch (err) {
    view.append(el("p", { class: "error" }, err.message));
    return;
  }
  next.disabled = page.length < PAGE;
  const cursor = (row) => (isAdmin() ? `${row.tenant}/${row.id}` : row.id);
  next.addEventListener("click", () => { list.pages.push(cursor(page[page.length - 1])); showList(); });
  for (const row of page) {
    const link = isAdmin() ? `#/t/${encodeURIComponent(row.tenant)}/w/${encodeURIComponent(row.id)}`
      : `#/w/${encodeURIComponent(row.id)}`;
    rows.append(el("tr", { "data-id": row.id, "data-tenant": row.tenant },
      isAdmin() ? el("td", {}, row.tenant) : null,
      el("td", {}, el("a", { href: link }, row.id)),
      el("td", {}, statusText(row.status)),
      el("td", {}, time(row.created_at_ms)),
      el("td", {}, time(row.updated_at_ms)),
      el("td", { class: row.error ? "error" : "" },
        row.error ? `${row.error.kind}: ${row.error.message}` : "result" in row ? JSON.stringify(row.result) : "")));
  }
}

// ---------------------------------------------------------------- graph

/** Columns and rows for the steps: a chain runs left to right, a group's
 *  members fan out in one column, a chord's body follows its header. */
function layout(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const inside = (id, outer) => id.startsWith(`${outer}.`);
  const endDepth = (id) => {
    let deepest = depth.get(id) ?? 0;
    for (const [other, d] of depth) if (inside(other, id)) deepest = Math.max(deepest, d);
    return deepest;
  };
  for (const step of [...steps].sort((a, b) => a.seq - b.seq)) {
    let d = 0;
    if (step.id.endsWith(".body")) {
      const chord = step.id.slice(0, -".body".length);
      for (const [other, od] of depth) {
        if (inside(other, chord) && !other.startsWith(step.id)) d = Math.max(d, od + 1);
      }
      d = Math.max(d, (depth.get(chord) ?? 0) + 1);
    } else if (step.parent && byId.has(step.parent)) {
      d = inside(step.id, step.parent) ? depth.get(step.parent) + 1 : endDepth(step.parent) + 1;
    }
    depth.set(step.id, d);
  }
  const columns = new Map();
  const place = new Map();
  for (const step of [...steps].sort((a, b) => a.seq - b.seq)) {
    const d = depth.get(step.id);
    const row = columns.get(d) ?? 0;
    columns.set(d, row + 1);
    place.set(step.id, { x: d, y: row });
  }
  return place;
}

/** The graph of `report`'s steps, scaled as `view` says: `fit` to its
 *  card's width, or by `zoom`. */
function drawGraph(report, selected, onSelect, view = { fit: false, zoom: 1 }) {
  const place = layout(report.steps);
  const W = 170, H = 44, GX = 40, GY = 16;
  let width = 0, height = 0;
  for (const { x, y } of place.values()) {
    width = Math.max(width, (x + 1) * (W + GX));
    height = Math.max(height, (y + 1) * (H + GY));
  }
  const size = view.fit ? { width: "100%" } : { width: width * view.zoom, height: height * view.zoom };
  const root = svg("svg", { id: "graph", ...size, viewBox: `0 0 ${width} ${height}` });
  const edge = (from, to) => {
    const x1 = from.x * (W + GX) + W, y1 = from.y * (H + GY) + H / 2;
    const x2 = to.x * (W + GX), y2 = to.y * (H + GY) + H / 2;
    const back = x2 <= x1 ? from.x * (W + GX) + 12 : x1;
    root.append(svg("path", { class: "edge", d: `M${back} ${y1} C${x2 - 20} ${y1}, ${back + 20} ${y2}, ${x2} ${y2}` }));
  };
  for (const step of report.steps) {
    const to = place.get(step.id);
    if (step.id.endsWith(".body")) {
      // A chord's body joins the ends of its header's members.
      const chord = step.id.slice(0, -".body".length);
      const members = report.steps.filter((s) => s.id.startsWith(`${chord}.`) && !s.id.startsWith(step.id));
      const ends = members.filter((s) => !members.some((t) => t.parent === s.id));
      for (const end of ends) edge(place.get(end.id), to);
      if (ends.length) continue;
    }
    const from = step.parent && place.get(step.parent);
    if (from) edge(from, to);
  }
  for (const step of report.steps) {
    const { x, y } = place.get(step.id);
    const group = svg("g", {
      class: `node ${step.status}${step.id === selected ? " selected" : ""}`,
      "data-step": step.id,
      "data-status": step.status,
      transform: `translate(${x * (W + GX)} ${y * (H + GY)})`,
    });
    group.append(svg("rect", { width: W, height: H }));
    const name = svg("text", { x: 8, y: 18 });
    name.textContent = step.task.length > 24 ? `${step.task.slice(0, 23)}…` : step.task;
    const detail = svg("text", { x: 8, y: 34 });
    detail.textContent = `${step.id} · ${step.status}`;
    group.append(name, detail);
    group.addEventListener("click", () => onSelect(step.id));
    root.append(group);
  }
  return root;
}

// ---------------------------------------------------------------- one workflow

let following = null;

function stopFollowing() {
  if (following) following.abort();
  following = null;
}

/** Reads the workflow's events as server-sent events (through fetch, which
 *  can send the key), calling `changed` for each, until it ends. */
async function follow(id, tenant, changed) {
  stopFollowing();
  const controller = new AbortController();
  following = controller;
  try {
    const response = await fetch(workflowPath(id, tenant, "/events", "follow=1"), {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
      signal: controller.signal,
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        buffer = buffer.slice(end + 2);
        changed();
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") console.warn(err);
  }
  if (following === controller) {
    following = null;
    changed();
  }
}

async function showWorkflow(id, tenant = null) {
  const state = { selected: null, report: null, pending: null, view: { fit: false, zoom: 1 } };
  const view = $("#view");
  const title = el("h1", {}, tenant ? `${id} (${tenant})` : id);
  const status = el("p", { id: "workflow-status" });
  const buttons = {
    cancel: el("button", { id: "cancel", type: "button", class: "danger", onclick: () => act("cancel") }, "Cancel"),
    retry: el("button", { id: "retry", type: "button", onclick: () => act("retry") }, "Retry"),
    resume: el("button", { id: "resume", type: "button", onclick: () => act("resume") }, "Resume"),
  };
  const actions = el("div", { class: "toolbar" }, buttons.cancel, buttons.retry, buttons.resume,
    el("span", { id: "action-error", class: "error" }));
  const graph = el("div", { class: "card", id: "graph-card" });
  // Fit the whole graph in the card, zoom in or out, and keep the step
  // under way in sight as it moves on.
  const following = el("input", { id: "follow", type: "checkbox" });
  following.checked = true;
  const redraw = (view) => {
    state.view = { ...state.view, ...view };
    if (state.report) draw();
  };
  const zoomBy = (factor) => redraw({ fit: false, zoom: Math.min(4, Math.max(0.1, state.view.zoom * factor)) });
  const controls = el("div", { class: "toolbar graph-controls" },
    el("button", { id: "fit", type: "button", onclick: () => redraw({ fit: true }) }, "Fit"),
    el("button", { id: "zoom-in", type: "button", onclick: () => zoomBy(1.25) }, "+"),
    el("button", { id: "zoom-out", type: "button", onclick: () => zoomBy(0.8) }, "−"),
    el("label", {}, following, " follow the step under way"));
  const detail = el("div", { class: "card", id: "step-detail" }, "Select a step.");
  const events = el("ol", { class: "events", id: "events", start: 0 });
  view.replaceChildren(title, status, actions,
    el("div", { class: "panes" }, el("div", {}, controls, graph, el("div", { class: "card" }, el("h2", {}, "Events"), events)), detail));

  /** Draws the graph, and brings the step under way (else the latest) into
   *  view when following. */
  function draw(keepInSight = true) {
    graph.replaceChildren(drawGraph(state.report, state.selected, select, state.view));
    if (!keepInSight || !following.checked) return;
    const nodes = [...graph.querySelectorAll(".node")];
    const busy = ["running", "retrying", "scheduled", "sleeping", "waiting"];
    const current = nodes.find((n) => busy.includes(n.dataset.status)) ?? nodes[nodes.length - 1];
    if (current) current.scrollIntoView({ block: "nearest", inline: "center" });
  }

  async function act(what) {
    $("#action-error").textContent = "";
    try {
      await api(workflowPath(id, tenant, `/${what}`), { method: "POST" });
      await refresh();
      follow(id, tenant, later);
    } catch (err) {
      $("#action-error").textContent = err.message;
    }
  }

  function later() {
    if (state.pending) return;
    state.pending = setTimeout(() => { state.pending = null; refresh(); }, 150);
  }

  async function refresh() {
    let report, log;
    try {
      [report, log] = await Promise.all([
        api(workflowPath(id, tenant)),
        api(workflowPath(id, tenant, "/events")),
      ]);
    } catch (err) {
      status.replaceChildren(el("span", { class: "error" }, err.message));
      return;
    }
    state.report = report;
    // Only what the workflow's state allows; this page's buttons, not
    // whichever page shows now (a refresh can come after the page changed).
    buttons.cancel.disabled = !["running", "cut_off"].includes(report.status);
    buttons.retry.disabled = report.status !== "failed";
    buttons.resume.disabled = report.status !== "cut_off";
    status.replaceChildren(statusText(report.status), ` · ${report.progress.summary}`,
      report.error ? el("span", { class: "error" }, ` · ${report.error.kind}: ${report.error.message}`) : "",
      "result" in report ? ` · result ${JSON.stringify(report.result)}` : "");
    draw();
    events.replaceChildren(...log.map((e) =>
      el("li", {}, `${time(e.at_ms)} ${e.kind} ${e.step ?? ""} ${e.detail ?? ""}`)));
    if (state.selected) showStep(state.selected);
  }

  function select(stepId) {
    state.selected = stepId;
    draw(false);
    showStep(stepId);
  }

  function showStep(stepId) {
    const step = state.report.steps.find((s) => s.id === stepId);
    if (!step) return;
    const rows = [
      ["step", step.id], ["task", step.task], ["status", statusText(step.status)],
      ["attempts", String(step.attempts)], ["fuel", String(step.fuel_used)],
      ["duration", `${step.duration_ms.toFixed(1)} ms`], ["queued", `${(step.queued_ms ?? 0).toFixed(1)} ms`],
      ["started", time(step.started_at_ms)], ["ended", time(step.ended_at_ms)],
    ];
    const pause = pauseText(step);
    if (pause) rows.splice(3, 0, ["waits", pause]);
    const parts = [el("h2", {}, `Step ${step.id}`),
      el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("h3", {}, "args"), el("pre", { id: "step-args" }, json(step.args)),
      el("h3", {}, "kwargs"), el("pre", {}, json(step.kwargs))];
    if (step.error) {
      parts.push(el("h3", {}, "error"), el("pre", { id: "step-error", class: "error" }, `${step.error.kind}: ${step.error.message}`));
    }
    if ("result" in step) parts.push(el("h3", {}, "result"), el("pre", { id: "step-result" }, json(step.result)));
    for (const stream of ["stdout", "stderr"]) {
      if (step[stream]?.text) parts.push(el("h3", {}, stream), el("pre", { id: `step-${stream}` }, step[stream].text));
    }
    if (step.logs?.length) {
      parts.push(el("h3", {}, "logs"), el("pre", { id: "step-logs" }, step.logs.map((l) => `${l.level}: ${l.message}`).join("\n")));
    }
    detail.replaceChildren(...parts);
  }

  await refresh();
  if (state.report?.status === "running") follow(id, tenant, later);
}

// ---------------------------------------------------------------- schedules

function cadenceText(schedule) {
  if (schedule.cron) return `cron ${schedule.cron} (${schedule.tz ?? "UTC"})`;
  return `every ${schedule.every_ms / 1000} s`;
}

/** The tenant's schedules: each one's next ticks, its last runs with what
 *  became of them, and the actions its state allows. */
async function showSchedules() {
  const view = $("#view");
  const names = await api("/v1/schedules");
  const details = await Promise.all(names.map((s) => api(`/v1/schedules/${encodeURIComponent(s.name)}`)));
  const error = el("p", { id: "schedule-error", class: "error" });
  const act = async (name, what) => {
    error.textContent = "";
    try {
      await api(`/v1/schedules/${encodeURIComponent(name)}/${what}`, { method: "POST" });
      await showSchedules();
    } catch (err) {
      error.textContent = err.message;
    }
  };
  const rows = el("tbody", { id: "schedules" });
  for (const schedule of details) {
    const runs = schedule.ticks.slice(0, 5).map((tick) => el("li", { class: "tick" },
      `${tick.at.replace("T", " ").slice(0, 19)} `, statusText(tick.outcome),
      tick.count > 1 ? ` ×${tick.count}` : "",
      tick.workflow ? el("span", {}, " ", el("a", { href: `#/w/${encodeURIComponent(tick.workflow)}` }, tick.workflow),
        tick.status ? " " : "", tick.status ? statusText(tick.status) : "") : ""));
    const pause = el("button", { type: "button", class: "pause", onclick: () => act(schedule.name, "pause") }, "Pause");
    const resume = el("button", { type: "button", class: "resume", onclick: () => act(schedule.name, "resume") }, "Resume");
    const trigger = el("button", { type: "button", class: "trigger", onclick: () => act(schedule.name, "trigger") }, "Run now");
    pause.disabled = schedule.paused;
    resume.disabled = !schedule.paused;
    rows.append(el("tr", { "data-name": schedule.name },
      el("td", {}, schedule.name),
      el("td", {}, cadenceText(schedule), el("br"), `overlap ${schedule.overlap}`),
      el("td", {}, statusText(schedule.paused ? "paused" : "active")),
      el("td", {}, el("ul", { class: "next-ticks" },
        ...schedule.next_ticks.map((at) => el("li", {}, at.replace("T", " ").slice(0, 19))))),
      el("td", {}, el("ul", { class: "runs" }, ...runs)),
      el("td", {}, el("div", { class: "toolbar" }, pause, resume, trigger))));
  }
  const headings = ["name", "cadence", "state", "next ticks", "last runs", ""];
  view.replaceChildren(el("h1", {}, "Schedules"), error,
    details.length === 0 ? el("p", { id: "no-schedules" }, "No schedules: make one with `wfhost schedule add` or POST /v1/schedules.")
      : el("table", {}, el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))), rows));
}

// ---------------------------------------------------------------- usage

async function showUsage() {
  const view = $("#view");
  const [answer, rows] = await Promise.all([api("/v1/usage"), api("/v1/workflows?limit=1000")]);
  // The operator gets one row per tenant; a tenant its own.
  const all = Array.isArray(answer) ? answer : [answer];
  const usage = all.reduce((sum, u) => ({
    tenant: Array.isArray(answer) ? "every tenant" : u.tenant,
    workflows: sum.workflows + u.workflows, steps: sum.steps + u.steps, attempts: sum.attempts + u.attempts,
    fuel: sum.fuel + u.fuel, duration_ms: sum.duration_ms + u.duration_ms,
  }), { workflows: 0, steps: 0, attempts: 0, fuel: 0, duration_ms: 0 });
  const bars = usageChart(rows);
  view.replaceChildren(el("h1", {}, `Usage of ${usage.tenant}`),
    el("div", { class: "card" }, el("dl", { id: "usage" },
      ...[["workflows", usage.workflows], ["steps", usage.steps], ["attempts", usage.attempts],
        ["fuel", usage.fuel], ["time", `${(usage.duration_ms / 1000).toFixed(2)} s`]]
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]))),
    el("div", { class: "card" }, el("h2", {}, "Workflows started per hour"), bars));
}

/** Hours a usage chart shows at most: the latest. */
const CHART_HOURS = 48;

/** Workflows started per hour as an SVG bar chart: a bar for every hour
 *  from the first to this one (a day at least, the latest CHART_HOURS at
 *  most), an axis of counts with its top labelled, and hours along the
 *  bottom. */
function usageChart(rows) {
  const perHour = new Map();
  for (const row of rows) {
    const hour = Math.floor(row.created_at_ms / 3600000);
    perHour.set(hour, (perHour.get(hour) ?? 0) + 1);
  }
  const chart = svg("svg", { id: "usage-chart", viewBox: "0 0 640 200", role: "img" });
  if (perHour.size === 0) {
    chart.append(Object.assign(svg("text", { x: 320, y: 100, "text-anchor": "middle" }), { textContent: "no workflows yet" }));
    return chart;
  }
  // Up to this hour, and a day at least, so one busy hour is one bar of many.
  const last = Math.max(...perHour.keys(), Math.floor(Date.now() / 3600000));
  const first = Math.min(Math.max(Math.min(...perHour.keys()), last - CHART_HOURS + 1), last - 23);
  const hours = last - first + 1;
  const most = Math.max(1, ...[...perHour.entries()].filter(([h]) => h >= first).map(([, n]) => n));
  const [left, right, top, bottom] = [40, 630, 10, 170];
  const width = (right - left) / hours;
  const text = (attrs, content) => Object.assign(svg("text", attrs), { textContent: content });
  chart.append(
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }),
    svg("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }),
    text({ class: "label", x: left - 6, y: top + 4, "text-anchor": "end" }, String(most)),
    text({ class: "label", x: left - 6, y: bottom, "text-anchor": "end" }, "0"));
  for (let hour = first; hour <= last; hour++) {
    const count = perHour.get(hour) ?? 0;
    const height = ((bottom - top) * count) / most;
    const x = left + (hour - first) * width;
    const bar = svg("rect", { class: "bar", x: x + 1, y: bottom - height, width: Math.max(1, width - 2), height,
      "data-hour": new Date(hour * 3600000).toISOString(), "data-count": count });
    bar.append(Object.assign(svg("title"), { textContent: `${time(hour * 3600000)}: ${count}` }));
    chart.append(bar);
    // A label every few hours, so that they never overlap.
    const every = Math.ceil(hours / 8);
    if ((hour - first) % every === 0) {
      const label = new Date(hour * 3600000).toISOString().slice(5, 13).replace("T", " ") + "h";
      chart.append(text({ class: "label", x: x + width / 2, y: bottom + 16, "text-anchor": "middle" }, label));
    }
  }
  return chart;
}

// ---------------------------------------------------------------- routing

function route() {
  if (!sessionStorage.getItem(KEY)) return logout();
  stopFollowing();
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#who").textContent = sessionStorage.getItem("wfhost-who") ?? "";
  const hash = location.hash.slice(1) || "/";
  const ofTenant = hash.match(/^\/t\/([^/]*)\/w\/(.*)$/);
  const run = ofTenant ? showWorkflow(decodeURIComponent(ofTenant[2]), decodeURIComponent(ofTenant[1]))
    : hash.startsWith("/w/") ? showWorkflow(decodeURIComponent(hash.slice(3)))
    : hash === "/usage" ? showUsage()
    : hash === "/schedules" ? showSchedules() : showList();
  run.catch((err) => {
    if (err.message !== "unauthorized") $("#view").replaceChildren(el("p", { class: "error" }, err.message));
  });
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  // `wfhost ui` hands its key over in the address's fragment: kept for
  // this tab, and taken out of the address (and so of the history).
  // Any key the policy takes: its characters come percent-encoded.
  const handed = location.hash.match(/^#key=(.+)$/);
  if (handed) {
    sessionStorage.setItem(KEY, decodeURIComponent(handed[1]));
    history.replaceState(null, "", "#/");
  }
  if (sessionStorage.getItem(KEY)) start();
  else logout();
});
