#!/usr/bin/env bash
# Copy the browser builds of the npm packages pinned in package-lock.json into
# static/vendor/, where Django's staticfiles finds them. static/vendor/ is generated:
# never commit it, run this again after `npm ci` / `npm install`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
modules="$root/node_modules"
dest="$root/static/vendor"

if [[ ! -d "$modules" ]]; then
    echo "copy-vendor: $modules is missing; run 'npm ci' (or 'npm install') first" >&2
    exit 1
fi

# source (relative to node_modules) -> name in static/vendor/
files=(
    "marked/lib/marked.esm.js:marked.esm.js"
    "marked/lib/marked.esm.js.map:marked.esm.js.map"
    "dompurify/dist/purify.es.mjs:purify.es.mjs"
    "dompurify/dist/purify.es.mjs.map:purify.es.mjs.map"
    "@highlightjs/cdn-assets/es/highlight.min.js:highlight.min.js"
    "@highlightjs/cdn-assets/styles/github.min.css:hljs-github.min.css"
    "@highlightjs/cdn-assets/styles/github-dark.min.css:hljs-github-dark.min.css"
    # KaTeX's ES module only: the page asks for MathML output, which Chromium, Firefox
    # and Safari render natively, so KaTeX's CSS and fonts (and the inline styles of its
    # HTML output, which the CSP would block) are not needed.
    "katex/dist/katex.mjs:katex.mjs"
    # Licences travel with the code they cover.
    "marked/LICENSE:marked.LICENSE.txt"
    "dompurify/LICENSE:dompurify.LICENSE.txt"
    "@highlightjs/cdn-assets/LICENSE:highlightjs.LICENSE.txt"
    "katex/LICENSE:katex.LICENSE.txt"
)
# The .map files are copied because the builds name them in a sourceMappingURL comment:
# ManifestStaticFilesStorage (collectstatic) fails on a reference to a missing file.

# Check everything first so that a failed run leaves the old copy untouched.
missing=0
for entry in "${files[@]}"; do
    src="$modules/${entry%%:*}"
    if [[ ! -f "$src" ]]; then
        echo "copy-vendor: missing $src (did a package change its layout?)" >&2
        missing=1
    fi
done
if (( missing )); then
    exit 1
fi

mkdir -p "$dest"
for entry in "${files[@]}"; do
    cp "$modules/${entry%%:*}" "$dest/${entry#*:}"
done

echo "copy-vendor: ${#files[@]} files copied to ${dest#"$root"/}/"
