// Markdown → sanitised DOM for model and user text.
//
// Text from a model is untrusted. Three layers keep it inert:
//  1. marked's `html` renderer prints raw HTML as escaped text, so `<img onerror=…>` or
//     `<script>` in an answer shows up literally instead of becoming markup;
//  2. DOMPurify cleans whatever marked produced (no scripts, event handlers, styles,
//     forms or javascript: URLs);
//  3. the Content-Security-Policy (script-src 'self') would block a script anyway.
// Nothing here ever assigns unsanitised text to innerHTML.

import { Marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.mjs";
import hljs from "../vendor/highlight.min.js";
import { escapeHtml } from "./escape.js";
import { mathExtension } from "./math.js";

export { escapeHtml };
export { onMathReady } from "./math.js";

// A fence's info string is free text; only a plain language name becomes a class.
const LANGUAGE = /^[\w#+.-]{1,32}$/;

// Streaming re-renders the whole message each frame: the finished code blocks of a
// growing answer hit this cache instead of being highlighted again.
const highlighted = new Map();
const HIGHLIGHT_CACHE_SIZE = 200;

function highlight(code, language) {
  const key = `${language}\u0000${code}`;
  let html = highlighted.get(key);
  if (html === undefined) {
    html =
      language && hljs.getLanguage(language)
        ? hljs.highlight(code, { language, ignoreIllegals: true }).value
        : escapeHtml(code);
    if (highlighted.size >= HIGHLIGHT_CACHE_SIZE) {
      highlighted.delete(highlighted.keys().next().value);
    }
    highlighted.set(key, html);
  }
  return html;
}

const renderer = {
  // Raw HTML, block or inline: shown as the text it is.
  html({ text }) {
    return escapeHtml(text);
  },
  code({ text, lang }) {
    const word = (lang || "").trim().split(/\s+/)[0];
    const language = LANGUAGE.test(word) ? word.toLowerCase() : "";
    const code = text.replace(/\n$/, "");
    const label = escapeHtml(language || "text");
    const cls = language ? ` language-${escapeHtml(language)}` : "";
    return (
      `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span></div>` +
      `<pre><code class="hljs${cls}">${highlight(code, language)}</code></pre></div>`
    );
  },
  // Images become links: the CSP blocks other origins' images anyway, and an answer
  // should not make the browser fetch URLs by itself.
  image({ href, text }) {
    const label = escapeHtml(text || href || "");
    return `<a class="image-link" href="${escapeHtml(href || "")}">[image: ${label}]</a>`;
  },
};

// Answers follow CommonMark/GFM line rules; what a person typed keeps its line breaks.
const answers = new Marked({ gfm: true, breaks: false, async: false, renderer }, mathExtension);
const typed = new Marked({ gfm: true, breaks: true, async: false, renderer }, mathExtension);

const PURIFY = {
  // MathML for KaTeX's output (raw markup in the text never gets here: see `html` above);
  // no SVG. <semantics>/<annotation> keep the TeX source with the formula, hidden by
  // the browser, so that selecting and copying a formula gives its source.
  USE_PROFILES: { html: true, mathMl: true },
  ADD_TAGS: ["semantics", "annotation"],
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option", "iframe", "object", "embed"],
  FORBID_ATTR: ["style", "srcset"],
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

function addCopyButtons(root) {
  for (const block of root.querySelectorAll(".code-block")) {
    const head = block.querySelector(".code-head");
    if (!head || head.querySelector(".copy-code")) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    head.append(button);
  }
}

/** Replace target's children with `source` rendered as sanitised Markdown. */
export function renderMarkdown(target, source, { breaks = false } = {}) {
  if (!source) {
    target.replaceChildren();
    return;
  }
  let fragment;
  try {
    const html = (breaks ? typed : answers).parse(source);
    fragment = DOMPurify.sanitize(html, PURIFY);
  } catch (error) {
    console.error("Markdown rendering failed; showing plain text", error);
    target.textContent = source;
    return;
  }
  addCopyButtons(fragment);
  target.replaceChildren(fragment);
}

/** Put `text` on the clipboard; rejects when the browser refuses. */
export async function writeClipboard(text) {
  // navigator.clipboard exists only in secure contexts (https, localhost).
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  try {
    if (!document.execCommand("copy")) throw new Error("copy refused");
  } finally {
    area.remove();
  }
}

/** One listener for every code block's Copy button, present and future. */
export function enableCopyButtons(root = document) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest?.(".copy-code");
    if (!button) return;
    const code = button.closest(".code-block")?.querySelector("pre code");
    if (!code) return;
    writeClipboard(code.textContent).then(
      () => flash(button, "Copied"),
      () => flash(button, "Copy failed"),
    );
  });
}

const flashing = new WeakMap(); // button → {label, timer}

/** Show `text` on a button for a moment, then its own label again. */
export function flash(button, text) {
  const state = flashing.get(button) ?? { label: button.textContent, timer: 0 };
  clearTimeout(state.timer);
  button.textContent = text;
  state.timer = setTimeout(() => {
    button.textContent = state.label;
    flashing.delete(button);
  }, 1500);
  flashing.set(button, state);
}
