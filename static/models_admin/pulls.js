// One row per pull in ul#pulls, the same markup as templates/models_admin/_pull.html,
// kept up to date from `pull` frames (at most a few per second per pull).
import { formatBytes, formatSeconds } from "./format.js";

const STATUS_LABELS = {
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
  interrupted: "Interrupted",
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cancelForm(url) {
  const form = element("form", "pull-cancel");
  form.method = "post";
  form.action = url;
  form.dataset.action = "cancel";
  const button = element("button", "button", "Cancel");
  button.type = "submit";
  button.dataset.testid = "cancel-pull";
  form.append(button);
  return form;
}

// What the bar shows, 0..1: the server's `fraction`, which never decreases and is 1
// only once the pull is done (models_admin/progress.py), not completed / total, which
// drops whenever Ollama announces another layer.
function fractionOf(pull) {
  if (pull.status === "done") return 1;
  return typeof pull.fraction === "number" ? Math.min(Math.max(pull.fraction, 0), 1) : 0;
}

/** Whole percent as the server counts it (models_admin/progress.py `percent`). */
function percentOf(pull) {
  if (pull.status === "done") return 100;
  if (!pull.total) return null;
  return Math.floor(Math.round(fractionOf(pull) * 10000) / 100);
}

/** "45% · 18.0 MB of 40.0 MB · 8.1 MB/s · 3 s left" */
export function describeProgress(pull) {
  const parts = [];
  const percent = percentOf(pull);
  if (percent !== null && pull.total) {
    parts.push(`${percent}%`, `${formatBytes(pull.completed)} of ${formatBytes(pull.total)}`);
  }
  if (pull.status === "running") {
    if (typeof pull.speed === "number" && pull.speed > 0) parts.push(`${formatBytes(pull.speed)}/s`);
    if (typeof pull.eta === "number" && pull.completed < pull.total) {
      parts.push(`${formatSeconds(pull.eta)} left`);
    }
  }
  return parts.join(" · ");
}

function build(row, pull, cancelUrl) {
  const head = element("div", "pull-head");
  const meta = element("span", "pull-meta");
  const started = pull.started ? new Date(pull.started) : null;
  const when = started
    ? started.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : "";
  // With several hosts (data-show-host on the list), the host it was pulled to.
  const host = row.closest("[data-show-host]") && pull.host ? `on ${pull.host}` : "";
  meta.textContent = [host, pull.by ? `by ${pull.by}` : "", when].filter(Boolean).join(", ");
  head.append(element("strong", "pull-model", pull.model), element("span", "pull-state"), meta);
  if (pull.status === "running") head.append(cancelForm(cancelUrl.replace(/0{8}-0{4}-0{4}-0{4}-0{12}/, pull.id)));
  row.replaceChildren(
    head,
    element("progress", "pull-bar"),
    element("p", "pull-numbers"),
    element("p", "pull-error"),
  );
  row.dataset.built = "";
}

// A pull only moves forward: running with a fuller bar, then one final state. The same
// pull arrives from the socket, the POST's answer and the database (on reconnect), in
// any order, so an older state must never replace a newer one: the bar never goes back.
function isOlder(row, pull) {
  if (!("status" in row.dataset)) return false;
  const shownFinal = row.dataset.status !== "running";
  const final = pull.status !== "running";
  if (shownFinal !== final) return shownFinal;
  return !final && fractionOf(pull) < Number(row.dataset.fraction || 0);
}

/** Create or update the row of `pull` in `list`. */
export function showPull(list, pull, cancelUrl) {
  document.getElementById("pulls-empty")?.remove();
  let row = list.querySelector(`li[data-pull-id="${CSS.escape(pull.id)}"]`);
  if (!row) {
    row = element("li", "pull");
    row.dataset.pullId = pull.id;
    list.prepend(row);
  } else if (isOlder(row, pull)) {
    return;
  }
  const wasRunning = row.dataset.status === "running";
  // Server-rendered rows are rebuilt once; a row that stops running loses its button.
  if (!("built" in row.dataset) || (wasRunning && pull.status !== "running")) build(row, pull, cancelUrl);
  row.dataset.status = pull.status;
  row.dataset.fraction = String(fractionOf(pull));

  row.querySelector(".pull-state").textContent =
    pull.status === "running" ? pull.detail || "starting" : STATUS_LABELS[pull.status] || pull.status;
  const bar = row.querySelector(".pull-bar");
  const percent = percentOf(pull);
  if (pull.status === "done" || pull.total) {
    bar.max = 1;
    bar.value = fractionOf(pull);
  } else if (pull.status === "running") {
    bar.removeAttribute("value"); // indeterminate until Ollama names the first layer
  } else {
    bar.max = 1;
    bar.value = 0;
  }
  bar.textContent = percent === null ? "" : `${percent}%`;
  row.querySelector(".pull-numbers").textContent = describeProgress(pull);
  const error = row.querySelector(".pull-error");
  error.textContent = pull.error || "";
  error.hidden = !pull.error;
  if (pull.error) error.setAttribute("role", "alert");
}
