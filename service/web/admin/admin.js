// MyAshes insights page: asks for an admin bearer token (kept in sessionStorage, never in a
// URL), calls the admin JSON API and draws what it returns. No inline script or style (the
// page's CSP forbids both); every value reaches the DOM as text, never as HTML.
const API = "/api/v1";
const TOKEN_KEY = "myashes.admin.token";
const MODES = ["quick", "smart", "deep"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let nextCursor = null;

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || "error";
    this.retryAfter = retryAfter;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function call(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(API + path, { ...options, headers });
  } catch {
    throw new ApiError(0, { error: "network", message: "The service cannot be reached" });
  }
  if (response.ok) return response;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  throw new ApiError(response.status, body, response.headers.get("Retry-After"));
}

const getJson = async (path) => (await call(path)).json();

function say(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function explain(error) {
  switch (error.status) {
    case 401:
      return `Not signed in (401 ${error.code}): ${error.message}. Paste a valid admin token.`;
    case 403:
      return `This token has no admin role (403 ${error.code}). Ask for an admin token.`;
    case 429:
      return `Too many requests (429): retry in ${error.retryAfter || "a few"} seconds.`;
    case 503:
      return `The service is unavailable (503 ${error.code}): ${error.message}. ` +
        `Retry in ${error.retryAfter || "a few"} seconds.`;
    case 0:
      return `${error.message}. Check your connection and reload.`;
    default:
      return `Something went wrong (${error.status} ${error.code}): ${error.message}`;
  }
}

function fail(error) {
  say(explain(error), true);
  if (error.status === 401 || error.status === 403) showLogin();
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const percent = (value) => (value === null ? "–" : `${(value * 100).toFixed(1)}%`);
const when = (iso) => iso.replace("T", " ").slice(0, 16) + " UTC";

function fillRows(table, rows, columns, empty) {
  const body = $(table).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const cell = el("td", empty, "empty");
    cell.colSpan = columns;
    body.append(el("tr")).append(cell);
  }
  for (const cells of rows) {
    const tr = el("tr");
    tr.append(...cells);
    body.append(tr);
  }
}

function drawSummary(summary) {
  const totals = $("totals");
  totals.replaceChildren(
    el("li", `All modes ${percent(summary.totals.satisfaction)} ` +
      `(${summary.totals.up} up, ${summary.totals.down} down)`, "all"),
    ...MODES.map((mode) => {
      const m = summary.by_mode[mode];
      return el("li", `${mode} ${percent(m.satisfaction)} (${m.up} up, ${m.down} down)`, mode);
    }),
  );
  const chart = $("chart");
  chart.replaceChildren(chart.querySelector("title") || svg("title", {}, "Satisfaction"));
  const [width, height, left, top, bottom] = [640, 240, 40, 10, 25];
  const days = [...new Set(summary.daily.map((d) => d.day))];
  const x = (i) => left + (days.length < 2 ? (width - left) / 2 : (i * (width - left - 10)) / (days.length - 1));
  const y = (share) => top + (1 - share) * (height - top - bottom);
  for (const share of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: left, x2: width, y1: y(share), y2: y(share), class: "grid" }));
    chart.append(svg("text", { x: 2, y: y(share) + 4, class: "axis" }, `${share * 100}%`));
  }
  chart.append(svg("text", { x: left, y: height - 5, class: "axis" }, days[0] || ""));
  chart.append(svg("text", { x: width - 75, y: height - 5, class: "axis" }, days.at(-1) || ""));
  for (const mode of MODES) {
    const points = [];
    days.forEach((day, i) => {
      const d = summary.daily.find((row) => row.day === day && row.search_mode === mode);
      if (!d || d.up + d.down === 0) return;
      const share = d.up / (d.up + d.down);
      points.push(`${x(i)},${y(share)}`);
      const dot = svg("circle", { cx: x(i), cy: y(share), r: 4, class: `point ${mode}`, "data-mode": mode });
      dot.append(svg("title", {}, `${day} ${mode}: ${percent(share)} (${d.up} up, ${d.down} down)`));
      chart.append(dot);
    });
    if (points.length > 1) {
      chart.append(svg("polyline", { points: points.join(" "), class: `line ${mode}`, "data-mode": mode }));
    }
  }
}

function drawPatterns(patterns) {
  fillRows("patterns", patterns.items.map((p) => {
    const comments = el("ul", null, "comments");
    comments.append(...p.sample_comments.map((c) => el("li", c)));
    const cell = el("td");
    cell.append(comments);
    return [el("td", p.query), el("td", p.down, "num down"), el("td", p.up, "num up"),
      el("td", percent(p.down_rate), "num"), el("td", p.sessions, "num"),
      el("td", when(p.last_at)), cell];
  }), 7, "No thumbs-down in this period.");
}

function drawGaps(gaps) {
  fillRows("gaps", gaps.items.map((g) => [el("td", g.query), el("td", g.sessions, "num"),
    el("td", g.count, "num"), el("td", when(g.last_at))]), 4, "No searches without results.");
}

function queueRow(item) {
  const status = el("td", item.status, "status");
  const actions = el("td", null, "actions");
  for (const [target, label] of [["reviewed", "Mark reviewed"], ["resolved", "Mark resolved"]]) {
    const button = el("button", label, "secondary");
    button.type = "button";
    button.dataset.status = target;
    button.setAttribute("aria-label", `${label}: ${item.query}`);
    button.addEventListener("click", () => review(item.id, target, status, actions));
    actions.append(button);
  }
  const row = [el("td", when(item.received_at)), el("td", item.mode),
    el("td", item.rating === "up" ? "up" : "down", item.rating), el("td", item.query),
    el("td", item.comment ?? ""), status, actions];
  return row;
}

async function review(id, target, statusCell, actions) {
  for (const button of actions.querySelectorAll("button")) button.disabled = true;
  try {
    const response = await call(`/admin/feedback/${encodeURIComponent(id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ status: target }),
    });
    const item = await response.json();
    statusCell.textContent = item.status;
    statusCell.closest("tr").dataset.status = item.status;
    say(`Marked ${item.status} by ${item.reviewed_by}.`);
  } catch (error) {
    for (const button of actions.querySelectorAll("button")) button.disabled = false;
    fail(error);
  }
}

async function loadQueue(append) {
  const params = new URLSearchParams({ status: "new", limit: "20" });
  if (append && nextCursor) params.set("cursor", nextCursor);
  const page = await getJson(`/admin/feedback?${params}`);
  nextCursor = page.next_cursor;
  $("more").hidden = !nextCursor;
  const rows = page.items.map(queueRow);
  if (append) {
    const body = $("queue").tBodies[0];
    for (const cells of rows) {
      const tr = el("tr");
      tr.append(...cells);
      body.append(tr);
    }
  } else {
    fillRows("queue", rows, 7, "Nothing waits for review.");
  }
}

async function load() {
  const days = $("days").value;
  say("Loading…");
  try {
    const [summary, patterns, gaps] = await Promise.all([
      getJson(`/admin/feedback/summary?days=${days}`),
      getJson(`/admin/feedback/patterns?days=${days}&limit=20`),
      getJson(`/admin/insights/content-gaps?days=${Math.min(Number(days), 90)}&limit=20`),
    ]);
    await loadQueue(false);
    showInsights();
    drawSummary(summary);
    drawPatterns(patterns);
    drawGaps(gaps);
    say("");
  } catch (error) {
    fail(error);
  }
}

async function exportCsv() {
  try {
    const response = await call("/admin/feedback/export.csv");
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await response.blob());
    const link = el("a");
    link.href = url;
    link.download = name ? name[1] : "feedback.csv";
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    fail(error);
  }
}

function showLogin() {
  $("login").hidden = false;
  $("insights").hidden = true;
  $("sign-out").hidden = !token();
  $("token").focus();
}

function showInsights() {
  $("login").hidden = true;
  $("insights").hidden = false;
  $("sign-out").hidden = false;
}

function start() {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    load();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    say("Signed out.");
    showLogin();
  });
  $("days").addEventListener("change", load);
  $("more").addEventListener("click", () => loadQueue(true).catch(fail));
  $("export").addEventListener("click", exportCsv);
  if (token()) load();
  else showLogin();
}

start();
