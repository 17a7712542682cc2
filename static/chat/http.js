// JSON requests to our own server: the session cookie, the CSRF token from
// <body data-csrf>, and one shape for every outcome so callers never deal with exceptions.

const csrfToken = document.body.dataset.csrf;

/**
 * fetch `url` and read its JSON body. `body` may be FormData (multipart, for uploads) or
 * URLSearchParams (form-encoded). Resolves to {ok, status, data}; status 0 means the
 * server could not be reached, and data is then {error: "..."} in words.
 */
export async function requestJson(url, { method = "GET", body = undefined } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
  let response;
  try {
    response = await fetch(url, { method, body, headers, credentials: "same-origin" });
  } catch {
    return {
      ok: false,
      status: 0,
      data: { error: "Could not reach the server. Check your connection and try again." },
    };
  }
  // 204 and error pages have no JSON: an empty object keeps callers simple.
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data: data && typeof data === "object" ? data : {} };
}

/** The server's words for a failed request, or a generic sentence naming the status. */
export function errorText(result, what) {
  return result.data.error || `${what} failed (HTTP ${result.status}).`;
}
