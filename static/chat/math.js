// Maths in Markdown: $…$ and \(…\) inline, $$…$$ and \[…\] displayed, rendered by KaTeX
// as MathML (browsers draw it natively: no KaTeX CSS, fonts or inline styles, which the
// CSP would refuse anyway).
//
// The tokenizers are a marked extension, so they run where marked looks for inline or
// block syntax and never inside code spans or fenced code, which marked consumes first.
// KaTeX (600 kB) is loaded on first use: until it arrives a formula shows as its source,
// then `onMathReady` callbacks re-render what showed it.

import { escapeHtml } from "./escape.js";

let katex = null;
let loading = null;
const readyCallbacks = [];
const cache = new Map(); // "d|i" + source → HTML; streaming re-renders the same formulas
const CACHE_SIZE = 500;

// The page names KaTeX's URL ({% static %}: hashed in production, so cached for good);
// dynamic imports are not rewritten to hashed names by the manifest storage.
function katexUrl() {
  const named = document.querySelector("script[data-katex]")?.dataset.katex;
  return named || new URL("../vendor/katex.mjs", import.meta.url).href;
}

function load() {
  loading ??= import(katexUrl()).then(
    (module) => {
      katex = module.default;
      for (const callback of readyCallbacks) callback();
    },
    (error) => console.error("KaTeX could not be loaded; formulas stay as text", error),
  );
}

/** Call `callback` once KaTeX has loaded (so that pending formulas can be re-rendered). */
export function onMathReady(callback) {
  readyCallbacks.push(callback);
}

function render(source, display) {
  const tex = source.trim();
  if (!katex) {
    load();
    return `<span class="math-pending">${escapeHtml(display ? `$$${tex}$$` : `$${tex}$`)}</span>`;
  }
  const key = `${display ? "d" : "i"}|${tex}`;
  let html = cache.get(key);
  if (html === undefined) {
    try {
      // throwOnError: true so that we write the error markup ourselves: KaTeX's own
      // carries an inline style (refused by the CSP) and we want the source escaped by
      // one known function. strict "ignore": no console noise for unusual input.
      html = katex.renderToString(tex, {
        displayMode: display,
        output: "mathml",
        throwOnError: true,
        strict: "ignore",
        trust: false,
        maxSize: 50,
        maxExpand: 500,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      html = `<span class="math-error" title="${escapeHtml(reason)}">${escapeHtml(tex)}</span>`;
    }
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value);
    cache.set(key, html);
  }
  return display ? `<div class="math-display">${html}</div>` : html;
}

// --- tokenizers ---------------------------------------------------------------------

// Inline, tried in order at a candidate position. A single-dollar formula follows
// Pandoc's rule so that prices do not turn into maths: no space after the opening $,
// none before the closing one, and no digit right after it ("$5 and $10" stays text).
const INLINE = [
  [/^\$\$(?!\$)((?:\\[\s\S]|[^\\$])+?)\$\$/, true],
  [/^\\\(((?:\\[\s\S]|[^\\])+?)\\\)/, false],
  [/^\\\[((?:\\[\s\S]|[^\\])+?)\\\]/, true],
  [/^\$(?![\s$])((?:\\[\s\S]|[^\\$])+?)(?<![\s\\])\$(?!\d)/, false],
];

// A display formula on lines of its own (it may span several lines).
const BLOCK = [
  /^ {0,3}\$\$((?:\\[\s\S]|[^\\$])+?)\$\$[ \t]*(?:\n+|$)/,
  /^ {0,3}\\\[((?:\\[\s\S]|[^\\])+?)\\\][ \t]*(?:\n+|$)/,
];

export const mathExtension = {
  extensions: [
    {
      name: "mathBlock",
      level: "block",
      start(src) {
        return src.match(/^ {0,3}(?:\$\$|\\\[)/m)?.index;
      },
      tokenizer(src) {
        for (const pattern of BLOCK) {
          const match = pattern.exec(src);
          if (match) return { type: "mathBlock", raw: match[0], text: match[1] };
        }
        return undefined;
      },
      renderer(token) {
        return render(token.text, true);
      },
    },
    {
      name: "math",
      level: "inline",
      start(src) {
        const index = src.search(/\$|\\[([]/);
        return index < 0 ? undefined : index;
      },
      tokenizer(src) {
        for (const [pattern, display] of INLINE) {
          const match = pattern.exec(src);
          if (match) return { type: "math", raw: match[0], text: match[1], display };
        }
        return undefined;
      },
      renderer(token) {
        return render(token.text, token.display);
      },
    },
  ],
};
