// The composer's context gauge (templates/chat/_context_gauge.html): how much of the
// model's context window the last answer on screen used. Answers carry their numbers as
// data-context-used / data-context-window (rendered by the server, set by messages.js
// when an answer ends), so the gauge follows whatever branch is shown.

// As chat/context_window.py words and colours it: keep them alike.
const LOW = 0.7;
const HIGH = 0.9;

function detailText(used, window) {
  const tokens = window.toLocaleString("en-US");
  if (used >= window) {
    return `The last answer filled all ${tokens} tokens the model can see: the oldest messages no longer reach the model.`;
  }
  return `The last answer used ${used.toLocaleString("en-US")} of the ${tokens} tokens the model can see.`;
}

/** Show the numbers of the last answer in `list` that has them (or hide the gauge). */
export function updateContextGauge(gauge, list) {
  if (!gauge) return;
  const answers = list.querySelectorAll("[data-role=assistant][data-context-window]");
  const last = answers[answers.length - 1];
  const used = Number(last?.dataset.contextUsed);
  const window = Number(last?.dataset.contextWindow);
  if (!last || !Number.isInteger(used) || !Number.isInteger(window) || window <= 0) {
    gauge.hidden = true;
    return;
  }
  const meter = gauge.querySelector("meter");
  meter.max = window;
  meter.low = Math.round(window * LOW);
  meter.high = Math.round(window * HIGH);
  meter.value = used;
  const detail = detailText(used, window);
  gauge.querySelector(".context-gauge-percent").textContent = `${Math.min(100, Math.round((used * 100) / window))}%`;
  gauge.querySelector("#context-detail").textContent = detail;
  gauge.title = detail;
  gauge.hidden = false;
}
