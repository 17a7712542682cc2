// The models page: pulls with live progress, what is loaded (with a countdown to its
// unloading), the installed models. Everything live arrives over /ws/models/; this page
// never polls Ollama (docs/models-admin.md).
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
let localRequest = 0;

async function refreshLocal() {
  // The sort order in the address bar is kept.
  const request = ++localRequest;
  const query = new URLSearchParams(location.search);
  query.set("partial", "local");
  try {
    const response = await fetch(`${location.pathname}?${query}`, { credentials: "same-origin" });
    if (!response.ok || request !== localRequest) return;
    replaceWithHtml(localBox, await response.text());
    markLoaded(lastRunning);
  } catch {
    // The next change, or a reload, brings the list back.
  }
}

function onFrame(frame) {
  if (frame.type === "pulls") {
    // Oldest first, so that prepending leaves the newest on top.
    for (const pull of [...frame.pulls].reverse()) showPull(pullList, pull, cancelUrl);
  } else if (frame.type === "pull") {
    showPull(pullList, frame.pull, cancelUrl);
  } else if (frame.type === "server") {
    replaceWithHtml(statusBox, frame.status_html);
    replaceWithHtml(runningBox, frame.running_html);
    startCountdowns(runningBox);
    lastRunning = frame.running.map((model) => model.name);
    markLoaded(lastRunning);
  } else if (frame.type === "local") {
    refreshLocal();
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
