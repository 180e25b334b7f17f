/**
 * The dashboard page an HTTP listener serves at `/`: one static HTML file that loads the client's browser
 * bundle from `/mqtt.min.js`, connects back over `/mqtt` and, every second, reads `/metrics` and the admin API.
 * It shows the broker's figures, the message rates of the last five minutes as a plot, the connected clients,
 * the topic tree of the retained messages and the `$SYS` values. Everything a client sent (identifiers,
 * topics, payloads) is put into the page as text, never as markup.
 *
 * The page keeps what it shows in `window.dashboard` (`rates`, `clients`, `retained`, `sys`, `mqtt`), for
 * scripts and tests.
 *
 * @module
 */

/** The page. */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@x/mqtt broker</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f6f7f9; --in: #2563eb; --out: #ea580c; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
    background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: #fff;
    border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  h1 { font-size: 18px; margin: 0; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: repeat(2, minmax(0, 1fr)); }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
    min-width: 0; }
  .wide { grid-column: 1 / -1; }
  .status { padding: 2px 8px; border-radius: 10px; background: var(--line); font-size: 12px; }
  .status.up { background: #dcfce7; color: #166534; }
  .status.down { background: #fee2e2; color: #991b1b; }
  form { display: flex; gap: 8px; align-items: center; margin-left: auto; }
  form[hidden] { display: none; }
  input { font: inherit; padding: 3px 6px; border: 1px solid var(--line); border-radius: 4px; }
  button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 4px;
    background: #fff; cursor: pointer; }
  .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; }
  .figure { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
  .figure b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
  .figure span { color: var(--muted); font-size: 12px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top;
    overflow-wrap: anywhere; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  td.n, th.n { text-align: right; }
  .note { color: var(--muted); }
  .legend { display: flex; gap: 16px; color: var(--muted); font-size: 12px; }
  .legend i { display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; }
  svg text { fill: var(--muted); font-size: 11px; }
  ul.tree { list-style: none; margin: 0; padding-left: 14px; }
  ul.tree > li { margin: 1px 0; }
  ul.tree code { background: var(--bg); padding: 0 4px; border-radius: 3px; }
  summary { cursor: pointer; }
  .sys { max-height: 420px; overflow: auto; }
</style>
</head>
<body>
<header>
  <h1>@x/mqtt broker</h1>
  <span id="mqtt" class="status">connecting</span>
  <span id="uptime" class="note"></span>
  <form id="login" hidden>
    <span id="login-why" class="note"></span>
    <input id="user" name="user" placeholder="user" autocomplete="username" required>
    <input id="password" name="password" type="password" placeholder="password" autocomplete="current-password">
    <button>Sign in</button>
  </form>
</header>
<main>
  <section class="wide">
    <div class="figures" id="figures"></div>
  </section>
  <section class="wide">
    <h2>Messages per second, last 5 minutes</h2>
    <div class="legend"><span><i style="background:var(--in)"></i>in (PUBLISH received)</span>
      <span><i style="background:var(--out)"></i>out (deliveries)</span><span id="rate-now"></span></div>
    <svg id="plot" viewBox="0 0 900 200" width="100%" height="200" preserveAspectRatio="none" role="img"
      aria-label="messages per second">
      <g id="grid"></g>
      <polyline id="rate-in" fill="none" stroke="var(--in)" stroke-width="2" points=""></polyline>
      <polyline id="rate-out" fill="none" stroke="var(--out)" stroke-width="2" points=""></polyline>
    </svg>
  </section>
  <section class="wide" id="bridges-section" hidden>
    <h2>Bridges</h2>
    <table id="bridges">
      <thead><tr><th>Bridge</th><th>State</th><th class="n">Sent</th><th class="n">Received</th>
        <th class="n">Queued</th><th class="n">Refused</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Connected clients <span id="clients-count" class="note"></span></h2>
    <table id="clients">
      <thead><tr><th>Client id</th><th>Address</th><th>User</th><th>Protocol</th><th class="n">Keep-alive</th>
        <th>Subscriptions</th><th class="n">Queued</th><th class="n">In flight</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="clients-note" class="note" hidden></p>
  </section>
  <section>
    <h2>Retained messages <span id="retained-count" class="note"></span></h2>
    <div id="tree"></div>
    <p id="tree-note" class="note" hidden></p>
  </section>
  <section>
    <h2>$SYS</h2>
    <div class="sys"><table id="sys"><tbody></tbody></table></div>
  </section>
</main>
<script type="module">
import { connect } from "/mqtt.min.js";

const POINTS = 300;
const state = {
  mqtt: "connecting",
  rates: { in: [], out: [], bytesIn: [], bytesOut: [] },
  metrics: {},
  clients: [],
  retained: [],
  retainedTotal: 0,
  sys: {},
};
window.dashboard = state;

const $ = (id) => document.getElementById(id);
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}
const number = (n) => Number.isFinite(n) ? Math.round(n).toLocaleString("en") : "–";
function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = Math.floor(seconds) % 60;
  return d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m + "m " + s + "s";
}

// Credentials: none at first; asked for when the broker or the API wants them.
let credentials;
function authorization() {
  // Without x-requested-with, a 401 would carry a challenge and the browser would prompt for credentials itself.
  if (credentials === undefined) return { "x-requested-with": "dashboard" };
  const bytes = new TextEncoder().encode(credentials.user + ":" + credentials.password);
  return { "x-requested-with": "dashboard", authorization: "Basic " + btoa(String.fromCharCode(...bytes)) };
}
function askLogin(why) {
  $("login-why").textContent = why;
  $("login").hidden = false;
}
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  credentials = { user: $("user").value, password: $("password").value };
  $("login").hidden = true;
  void connectMqtt();
  void tick();
});

// MQTT over /mqtt: the $SYS values.
let client;
let attempt = 0;
function setMqtt(text, kind) {
  state.mqtt = text;
  $("mqtt").textContent = "MQTT " + text;
  $("mqtt").className = "status " + (kind ?? "");
}
async function connectMqtt() {
  const mine = ++attempt;
  const old = client;
  client = undefined;
  if (old !== undefined) await old.close().catch(() => {});
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/mqtt";
  const id = "dashboard-" + Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) =>
    b.toString(16).padStart(2, "0")).join("");
  try {
    const next = await connect(url, {
      clientId: id,
      keepAlive: 30,
      username: credentials?.user,
      password: credentials?.password,
      reconnect: true,
      onStateChange: (event) => {
        if (mine !== attempt) return;
        if (event.type === "connected") setMqtt("connected", "up");
        else setMqtt(event.type, "down");
      },
    });
    if (mine !== attempt) return void await next.close();
    client = next;
    state.clientId = id;
    setMqtt("connected", "up");
    const subscription = await next.subscribe("$SYS/#");
    for await (const message of subscription) {
      state.sys[message.topic] = message.text();
      renderSys();
    }
  } catch (error) {
    // A connection replaced by a newer one (signing in) ends here too: only the current one reports.
    if (mine !== attempt) return;
    setMqtt("refused", "down");
    askLogin("MQTT: " + (error?.message ?? error));
  }
}
function renderSys() {
  const rows = Object.keys(state.sys).sort().map((topic) =>
    el("tr", {}, el("td", {}, topic.replace(/^\\$SYS\\/broker\\//, "")), el("td", { class: "n" }, state.sys[topic]))
  );
  $("sys").tBodies[0].replaceChildren(...rows);
}

// Every second: /metrics for the figures and the rates, the admin API for the clients and retained messages.
let previous;
function parseMetrics(text) {
  const sums = {};
  const samples = [];
  for (const line of text.split("\\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)\\})? (\\S+)$/.exec(line);
    if (match === null) continue;
    const value = Number(match[4]);
    sums[match[1]] = (sums[match[1]] ?? 0) + value;
    samples.push({ name: match[1], labels: match[3] ?? "", value });
  }
  return { sums, samples };
}
function push(series, value) {
  series.push(value);
  if (series.length > POINTS) series.shift();
}
async function readMetrics() {
  const response = await fetch("/metrics", { cache: "no-store" });
  const { sums, samples } = parseMetrics(await response.text());
  const now = performance.now();
  if (previous !== undefined) {
    const seconds = (now - previous.at) / 1000;
    const rate = (name) => Math.max(0, ((sums[name] ?? 0) - (previous.sums[name] ?? 0)) / seconds);
    push(state.rates.in, rate("mqtt_messages_received_total"));
    push(state.rates.out, rate("mqtt_deliveries_total"));
    push(state.rates.bytesIn, rate("mqtt_received_bytes_total"));
    push(state.rates.bytesOut, rate("mqtt_sent_bytes_total"));
  }
  previous = { at: now, sums };
  state.metrics = sums;
  const offline = samples.find((s) => s.name === "mqtt_sessions" && s.labels.includes('state="offline"'));
  const last = (series) => series.length === 0 ? NaN : series[series.length - 1];
  const figures = [
    ["connections", sums.mqtt_connections],
    ["offline sessions", offline?.value],
    ["subscriptions", sums.mqtt_subscriptions],
    ["retained", sums.mqtt_retained_messages],
    ["in / s", last(state.rates.in)],
    ["out / s", last(state.rates.out)],
    ["received", sums.mqtt_messages_received_total],
    ["delivered", sums.mqtt_deliveries_total],
    ["queued", sums.mqtt_queued_messages],
    ["dropped", sums.mqtt_messages_dropped_total],
    ["auth failures", sums.mqtt_authentication_failures_total],
    ["KiB in / s", last(state.rates.bytesIn) / 1024],
    ["KiB out / s", last(state.rates.bytesOut) / 1024],
    ["heap MiB", sums.mqtt_heap_used_bytes / 1048576],
  ].filter(([, value]) => value !== undefined);
  $("figures").replaceChildren(...figures.map(([label, value]) =>
    el("div", { class: "figure" }, el("b", {}, number(value)), el("span", {}, label))
  ));
  $("uptime").textContent = "up " + duration(sums.mqtt_uptime_seconds ?? 0);
  renderBridges(samples);
  renderPlot();
}
function renderBridges(samples) {
  const bridges = new Map();
  for (const sample of samples) {
    const name = /bridge="([^"]*)"/.exec(sample.labels)?.[1];
    if (name === undefined || !sample.name.startsWith("mqtt_bridge_")) continue;
    const bridge = bridges.get(name) ?? {};
    bridges.set(name, bridge);
    const direction = /direction="(\\w+)"/.exec(sample.labels)?.[1];
    bridge[sample.name.slice("mqtt_bridge_".length) + (direction === undefined ? "" : "_" + direction)] =
      sample.value;
  }
  state.bridges = Object.fromEntries(bridges);
  $("bridges-section").hidden = bridges.size === 0;
  $("bridges").tBodies[0].replaceChildren(...[...bridges].map(([name, b]) =>
    el("tr", { "data-bridge": name },
      el("td", {}, name),
      el("td", {}, el("span", { class: "status " + (b.up === 1 ? "up" : "down") }, b.up === 1 ? "connected" : "down")),
      el("td", { class: "n" }, number(b.messages_total_out)),
      el("td", { class: "n" }, number(b.messages_total_in)),
      el("td", { class: "n" }, number(b.queued_messages)),
      el("td", { class: "n" }, number(b.dropped_total)))
  ));
}
function renderPlot() {
  const width = 900, height = 200, top = 10, bottom = 190, left = 48;
  const all = state.rates.in.concat(state.rates.out);
  const peak = Math.max(1, ...all);
  const magnitude = 10 ** Math.floor(Math.log10(peak));
  const max = [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= peak);
  const y = (v) => bottom - (v / max) * (bottom - top);
  const x = (i, n) => width - (n - 1 - i) * ((width - left) / (POINTS - 1));
  const line = (series) => series.map((v, i) => x(i, series.length).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
  for (const [id, series] of [["rate-in", state.rates.in], ["rate-out", state.rates.out]]) {
    $(id).setAttribute("points", line(series));
    $(id).dataset.values = series.map((v) => Math.round(v)).join(",");
  }
  $("plot").dataset.max = String(max);
  const ns = "http://www.w3.org/2000/svg";
  $("grid").replaceChildren(...[0, max / 2, max].flatMap((v) => {
    const rule = document.createElementNS(ns, "line");
    for (const [k, a] of [["x1", left], ["x2", width], ["y1", y(v)], ["y2", y(v)], ["stroke", "#e4e7ec"]]) {
      rule.setAttribute(k, String(a));
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", String(Math.max(12, y(v) + 4)));
    label.textContent = number(v);
    return [rule, label];
  }));
  $("rate-now").textContent = "now: " + number(state.rates.in.at(-1)) + " in, " + number(state.rates.out.at(-1)) +
    " out";
}

const PROTOCOLS = { 3: "3.1", 4: "3.1.1", 5: "5.0" };
async function api(path) {
  const response = await fetch(path, { headers: authorization(), cache: "no-store" });
  if (response.status === 401) {
    askLogin("The admin API needs an admin user's credentials.");
    return { status: 401 };
  }
  if (!response.ok) return { status: response.status, error: (await response.json()).error };
  return { status: 200, body: await response.json(), total: response.headers.get("x-total-count") };
}
function note(id, text) {
  $(id).hidden = text === undefined;
  $(id).textContent = text ?? "";
}
async function readClients() {
  const answer = await api("/api/clients?limit=500");
  if (answer.status !== 200) {
    note("clients-note", answer.status === 403
      ? "The admin API is off: start the broker with --admin-user NAME (a user of its password file) to list clients."
      : answer.status === 401 ? "Sign in as an admin user to list the clients." : answer.error);
    return;
  }
  note("clients-note", undefined);
  state.clients = answer.body.sort((a, b) => a.clientId.localeCompare(b.clientId));
  state.clientsTotal = Number(answer.total ?? answer.body.length);
  $("clients-count").textContent = "(" + state.clientsTotal + (state.clientsTotal > answer.body.length ? ", the first " + answer.body.length + " shown)" : ")");
  const rows = state.clients.map((c) =>
    el(
      "tr",
      { "data-client": c.clientId },
      el("td", {}, c.clientId + (c.clientId === state.clientId ? " (this page)" : "")),
      el("td", {}, c.address ?? ""),
      el("td", {}, c.username ?? ""),
      el("td", {}, PROTOCOLS[c.protocolVersion] ?? String(c.protocolVersion ?? "")),
      el("td", { class: "n" }, c.keepAlive === undefined ? "" : c.keepAlive + " s"),
      el("td", {}, c.subscriptions.join(", ")),
      el("td", { class: "n" }, number(c.queued)),
      el("td", { class: "n" }, number(c.inflight)),
      el("td", {}, el("button", {
        onclick: async () => {
          if (!confirm("Disconnect " + c.clientId + "?")) return;
          await fetch("/api/clients/" + encodeURIComponent(c.clientId), { method: "DELETE", headers: authorization() });
          void readClients();
        },
      }, "Disconnect")),
    )
  );
  $("clients").tBodies[0].replaceChildren(...rows);
}

const open = new Set([""]);
async function readRetained() {
  const answer = await api("/api/retained?limit=1000&preview=120");
  if (answer.status !== 200) {
    note("tree-note", answer.status === 403 ? "The admin API is off." : answer.status === 401 ? "Sign in to see them." : answer.error);
    return;
  }
  note("tree-note", undefined);
  state.retained = answer.body;
  state.retainedTotal = Number(answer.total ?? answer.body.length);
  $("retained-count").textContent = "(" + state.retainedTotal + (state.retainedTotal > answer.body.length ? ", the first " + answer.body.length + " shown)" : ")");
  const root = { children: new Map() };
  for (const message of state.retained) {
    let node = root;
    for (const level of message.topic.split("/")) {
      if (!node.children.has(level)) node.children.set(level, { children: new Map() });
      node = node.children.get(level);
    }
    node.message = message;
  }
  $("tree").replaceChildren(branch(root, ""));
}
function branch(node, path) {
  const list = el("ul", { class: "tree" });
  for (const [level, child] of [...node.children].sort(([a], [b]) => a.localeCompare(b))) {
    const topic = path === "" ? level : path + "/" + level;
    const label = [el("span", {}, level === "" ? "(empty)" : level)];
    if (child.message !== undefined) {
      const m = child.message;
      const payload = m.payload ?? "base64:" + m.payloadBase64;
      label.push(" ", el("code", { title: topic }, payload + (m.truncated ? "…" : "")), " ",
        el("small", { class: "note" }, "QoS " + m.qos + ", " + m.size + " B"));
    }
    if (child.children.size === 0) {
      list.append(el("li", { "data-topic": topic }, ...label));
      continue;
    }
    const details = el("details", { "data-topic": topic }, el("summary", {}, ...label), branch(child, topic));
    details.open = open.has(topic) || !topic.includes("/");
    details.addEventListener("toggle", () => details.open ? open.add(topic) : open.delete(topic));
    list.append(el("li", {}, details));
  }
  return list;
}

let ticking = false;
async function tick() {
  if (ticking) return;
  ticking = true;
  try {
    await Promise.all([readMetrics(), readClients(), readRetained()].map((p) => p.catch((error) => {
      console.warn(error);
    })));
    state.ticks = (state.ticks ?? 0) + 1;
  } finally {
    ticking = false;
  }
}
void connectMqtt();
void tick();
setInterval(tick, 1000);
</script>
</body>
</html>
`;
