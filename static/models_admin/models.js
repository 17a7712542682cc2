// The models page: pulls with live progress, what is loaded (with a countdown to its
// unloading), the installed models, and with several Ollama hosts a table of them. The
// lists are those of one host (`data-host-url`); frames name the host they are about.
// Everything live arrives over /ws/models/; this page never polls Ollama
// (docs/models-admin.md).
import { enhanceForms } from "./actions.js";
import { formatCountdown } from "./format.js";
import { showPull } from "./pulls.js";
import { openModelsSocket } from "./socket.js";

const notice = document.getElementById("models-notice");
const connection = document.getElementById("models-connection");
const pullList = document.getElementById("pulls");
const cancelUrl = pullList.dataset.cancelUrl;
const statusBox = document.getElementById("server-status");
const runningBox = document.getElementById("running");
const localBox = document.getElementById("local");
const hostsBox = document.getElementById("hosts"); // only with several hosts
const hostUrl = document.getElementById("models-head").dataset.hostUrl;

// --- markup pushed by the server (our own templates, escaped by Django) ---------------

function replaceWithHtml(container, html) {
  // DOMParser never runs scripts; the nodes are adopted as they are.
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  container.replaceChildren(...doc.body.childNodes);
}

// --- countdowns: seconds left when the markup arrived, ticking here -------------------

function startCountdowns(root) {
  const now = Date.now();
  for (const node of root.querySelectorAll(".countdown[data-expires-in]")) {
    const value = node.dataset.expiresIn;
    node.dataset.deadline = value === "forever" ? "forever" : String(now + Number(value) * 1000);
  }
  tick();
}

function tick() {
  const now = Date.now();
  for (const node of runningBox.querySelectorAll(".countdown[data-deadline]")) {
    const deadline = node.dataset.deadline;
    node.textContent = formatCountdown(deadline === "forever" ? null : (Number(deadline) - now) / 1000);
  }
}

setInterval(tick, 1000);

// --- the lists --------------------------------------------------------------------------

function markLoaded(names) {
  const loaded = new Set(names.map((name) => name.toLowerCase()));
  for (const row of localBox.querySelectorAll("tr[data-model]")) {
    const running = loaded.has(row.dataset.model.toLowerCase());
    row.toggleAttribute("data-running", running);
    const badge = row.querySelector(".badge-running");
    if (running && !badge) {
      const span = document.createElement("span");
      span.className = "badge badge-running";
      span.textContent = "loaded";
      row.querySelector("th").append(" ", span);
    } else if (!running && badge) {
      badge.remove();
    }
  }
}

let lastRunning = [];
const requests = { local: 0, hosts: 0 };

async function fetchPartial(name) {
  // The host and the sort order in the address bar are kept.
  const request = ++requests[name];
  const query = new URLSearchParams(location.search);
  query.set("partial", name);
  try {
    const response = await fetch(`${location.pathname}?${query}`, { credentials: "same-origin" });
    if (!response.ok || request !== requests[name]) return null;
    return await response.text();
  } catch {
    return null; // the next change, or a reload, brings the list back
  }
}

async function refreshLocal() {
  const html = await fetchPartial("local");
  if (html === null) return;
  replaceWithHtml(localBox, html);
  markLoaded(lastRunning);
}

async function refreshHosts() {
  const html = await fetchPartial("hosts");
  if (html !== null && hostsBox) replaceWithHtml(hostsBox, html);
}

function hostRow(url) {
  return hostsBox?.querySelector(`tr[data-host-url="${CSS.escape(url)}"]`) ?? null;
}

/** A host's row in the hosts table follows its `server` frames. */
function showHostState(frame) {
  const row = hostRow(frame.host);
  if (!row) return;
  const ok = frame.reachable && !frame.error;
  if (row.dataset.reachable !== String(ok)) {
    // Gone or back: its count of installed models is only known to the server.
    row.dataset.reachable = String(ok);
    refreshHosts();
  }
  replaceWithHtml(row.querySelector(".host-state"), frame.host_state_html);
  row.querySelector(".host-version").textContent = frame.version || "—";
  row.querySelector(".host-loaded").textContent = ok ? String(frame.running.length) : "—";
}

function onFrame(frame) {
  if (frame.type === "pulls") {
    // Oldest first, so that prepending leaves the newest on top.
    for (const pull of [...frame.pulls].reverse()) showPull(pullList, pull, cancelUrl);
  } else if (frame.type === "pull") {
    showPull(pullList, frame.pull, cancelUrl);
  } else if (frame.type === "server") {
    showHostState(frame);
    if (frame.host !== hostUrl) return; // another host's lists are not on this page
    replaceWithHtml(statusBox, frame.status_html);
    replaceWithHtml(runningBox, frame.running_html);
    startCountdowns(runningBox);
    lastRunning = frame.running.map((model) => model.name);
    markLoaded(lastRunning);
  } else if (frame.type === "local") {
    if (hostsBox) refreshHosts(); // its count of installed models
    if (frame.host === hostUrl) refreshLocal();
  }
}

enhanceForms(document.querySelector("main"), notice, (action, data, form, sent) => {
  if (action === "pull" && data.pull) {
    showPull(pullList, data.pull, cancelUrl);
    // Emptied only if it still holds what was sent: a name typed meanwhile stays.
    if (data.ok && form.elements.model.value === sent.get("model")) form.reset();
  }
});
startCountdowns(runningBox);
openModelsSocket({
  onFrame,
  onStatus(text) {
    connection.textContent = text;
  },
});
