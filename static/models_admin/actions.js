// The action forms (pull, cancel, load, unload, copy): sent with fetch so the page stays
// put, the server's message shown in the notice. Without this script they still work as
// plain form posts that come back with the same message.

const BUSY_LABELS = {
  pull: "Starting…",
  cancel: "Cancelling…",
  load: "Loading…",
  unload: "Unloading…",
  copy: "Copying…",
};

export function showNotice(notice, message, ok) {
  if (!notice) return;
  notice.textContent = message;
  notice.hidden = !message;
  notice.classList.toggle("is-error", !ok);
}

async function post(form, body) {
  let response;
  try {
    response = await fetch(form.action, {
      method: "POST",
      body,
      credentials: "same-origin",
      // The token is in the page once (base.html); forms pushed over the socket have none.
      headers: { Accept: "application/json", "X-CSRFToken": document.body.dataset.csrf || "" },
    });
  } catch {
    return { ok: false, message: "Could not reach the server. Check your connection and try again." };
  }
  if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
    return { ok: false, message: "You are logged out. Log in again, then retry." };
  }
  const data = await response.json().catch(() => null);
  if (data && typeof data.message === "string") return data;
  if (response.status === 403) {
    return { ok: false, message: "Refused (HTTP 403): only staff can manage models, or the page is stale; reload it." };
  }
  return { ok: false, message: `The server could not do that (HTTP ${response.status}). Try again.` };
}

/**
 * Handle every `form[data-action]` inside `root` (including forms added later).
 * `onResult(action, data, form, sent)` runs after the server answered (`sent`: the
 * FormData that was posted).
 */
export function enhanceForms(root, notice, onResult = () => {}) {
  root.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    const button = event.submitter || form.querySelector("button[type=submit]");
    if (button?.disabled) return;
    const label = button?.textContent;
    if (button) {
      button.disabled = true;
      button.textContent = BUSY_LABELS[form.dataset.action] || "Working…";
    }
    try {
      const sent = new FormData(form);
      const data = await post(form, sent);
      showNotice(notice, data.message, data.ok);
      onResult(form.dataset.action, data, form, sent);
    } finally {
      // The form may have been replaced meanwhile (a pushed list); then this is a no-op.
      if (button) {
        button.disabled = false;
        button.textContent = label;
      }
    }
  });
}
