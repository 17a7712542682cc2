// The model picker: fills select[name=model] from /api/models/ (Ollama's /api/tags);
// and what one model can do (vision, thinking), from /api/models/<name>/.

import { requestJson } from "./http.js";

// Its Ollama server is down right now: it is installed, just out of reach for a while.
const UNAVAILABLE = "(unavailable for now)";

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

function matchModel(names, wanted) {
  if (!wanted) return null;
  if (names.includes(wanted)) return wanted;
  // "llama3.2" and "llama3.2:latest" are the same model to Ollama.
  if (!wanted.includes(":") && names.includes(`${wanted}:latest`)) return `${wanted}:latest`;
  return null;
}

/**
 * Fill `select` with the installed models. `wanted` is the page's model (the
 * conversation's, or the server default on a new chat); it stays selected, marked
 * "(not installed)" when Ollama does not have it. A model whose Ollama server is down
 * (`available: false`, or any missing model while a server whose models are unknown is
 * down: `incomplete`) is marked "(unavailable for now)" instead: it is not missing.
 * Problems go to `showNotice`; on failure the select keeps its current option so that
 * sending can still be tried.
 */
export async function loadModels(select, wanted, showNotice, { emptyLabel = "" } = {}) {
  let response;
  let data = {};
  try {
    response = await fetch("/api/models/", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    data = await response.json().catch(() => ({}));
  } catch {
    showNotice("Could not load the model list: the server is not reachable.");
    return;
  }
  if (!response.ok || data.error || !Array.isArray(data.models)) {
    showNotice(data.error || `Could not load the model list (HTTP ${response.status}).`);
    return;
  }
  const models = data.models.filter((model) => model && typeof model.name === "string" && model.name);
  const names = models.map((model) => model.name);
  const options = models.map((model) => {
    const label = model.parameter_size ? `${model.name} (${model.parameter_size})` : model.name;
    return option(model.name, model.available === false ? `${label} ${UNAVAILABLE}` : label);
  });
  // Read now, not before the fetch: a choice made meanwhile wins.
  const current = select.value || wanted || "";
  let selected = matchModel(names, current);
  const missing = !selected && current ? current : null;
  if (missing) {
    selected = missing;
    options.unshift(option(missing, `${missing} ${data.incomplete ? UNAVAILABLE : "(not installed)"}`));
  } else if (!selected && !emptyLabel) {
    const available = models.filter((model) => model.available !== false).map((model) => model.name);
    selected = matchModel(names, data.default) ?? available[0] ?? names[0] ?? null;
  }
  // A form where "no model" means something (the defaults page: the server's default).
  if (emptyLabel) {
    options.unshift(option("", data.default ? `${emptyLabel} (${data.default})` : emptyLabel));
    selected ??= "";
  }
  select.replaceChildren(...options);
  if (selected) select.value = selected;
  if (!names.length) {
    showNotice("No models are installed on the Ollama server yet. An administrator can pull one.");
  }
}

// --- one model's capabilities ---------------------------------------------------------

const infoCache = new Map(); // name → Promise<{capabilities, context_length} | null>

/**
 * What Ollama says `name` can do: {name, capabilities: [...], context_length}, or null
 * when it can't tell (Ollama down, unknown model). Asked once per page and model.
 */
export function modelInfo(name) {
  if (!name) return Promise.resolve(null);
  let found = infoCache.get(name);
  if (!found) {
    found = requestJson(`/api/models/${encodeURIComponent(name).replace(/%2F/gi, "/")}/`).then((result) => {
      if (result.ok && Array.isArray(result.data.capabilities)) return result.data;
      infoCache.delete(name); // ask again next time: Ollama may be back
      return null;
    });
    infoCache.set(name, found);
  }
  return found;
}
