// The conversation list and its tools (docs/history.md): more pages as you scroll, the ⋯
// menu (rename inline, pin, archive, export, delete with confirmation), live search,
// keyboard shortcuts, and opening a conversation at a search hit (#m-<uuid>).
// Loaded on the chat, search and archive pages; each part runs where its elements are.
// HTML fragments come from our own templates (escaped by Django) and are parsed with
// DOMParser, never assigned to innerHTML; everything else is set with textContent.

import { currentId, groupList, renameItem, tidy } from "./sidebar.js";

const $ = (selector) => document.querySelector(selector);
const csrfToken = document.body.dataset.csrf;
const list = $("#conversation-list");
const more = $("[data-testid=list-more]");
const menu = $("#conv-menu");
const dialog = $("#delete-dialog");
const notice = $("#history-notice") || $("[data-testid=notice]");
const searchInput = $("#search-input");
const searchResults = $("#search-results") || $("#search-page-results");
const nav = $("#conversation-nav");
const SEARCH_DELAY_MS = 200;

function say(text) {
  if (notice) notice.textContent = text;
}

function fragment(html) {
  // An inert document: nothing in it runs or loads.
  const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  return [...parsed.body.childNodes].map((node) => document.adoptNode(node));
}

async function request(url, { method = "GET", data = null } = {}) {
  let response;
  let body = {};
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      body: data ? new URLSearchParams(data) : undefined,
    });
    body = await response.json().catch(() => ({}));
  } catch {
    throw new Error("Could not reach the server. Check your connection and try again.");
  }
  if (response.status === 404) throw new Error("This conversation no longer exists.");
  if (!response.ok) throw new Error(body.error || `The server refused (HTTP ${response.status}).`);
  return body;
}

// --- pages of the list ----------------------------------------------------------------

function markCurrent(root) {
  const id = currentId();
  if (!id) return;
  for (const link of root.querySelectorAll(`a[data-testid=conversation-link][data-id="${id}"]`)) {
    link.classList.add("current");
    link.setAttribute("aria-current", "page");
  }
}

/** Append a page; a group the list already ends with continues instead of repeating. */
function appendPage(html) {
  for (const node of fragment(html)) {
    if (!(node instanceof HTMLElement)) continue;
    const sections = list.querySelectorAll("section.conv-group");
    const last = sections[sections.length - 1];
    if (node.matches("section.conv-group") && last?.dataset.group === node.dataset.group) {
      last.querySelector("ul.conv-items").append(...node.querySelectorAll("li.conv-item"));
    } else {
      list.append(node);
    }
  }
  markCurrent(list);
}

let loading = false;

async function loadMore() {
  if (loading || !more?.dataset.next) return;
  loading = true;
  more.disabled = true;
  try {
    const params = new URLSearchParams({ before: more.dataset.next, archived: list.dataset.archived || "0" });
    const page = await request(`/sidebar/?${params}`);
    appendPage(page.html);
    more.dataset.next = page.next || "";
    more.hidden = !page.next;
  } catch (error) {
    say(error.message);
  } finally {
    loading = false;
    more.disabled = false;
  }
}

/** Start again from the first page (after a change that moves items between groups). */
async function reloadList() {
  const params = new URLSearchParams({ archived: list.dataset.archived || "0" });
  const page = await request(`/sidebar/?${params}`);
  list.replaceChildren();
  appendPage(page.html);
  tidy(list);
  more.dataset.next = page.next || "";
  more.hidden = !page.next;
}

if (list && more) {
  // Back/Forward shows the page as it was first loaded (from the cache): whatever was
  // renamed, archived or deleted since would come back. Ask for the list as it is now.
  const [navigation] = performance.getEntriesByType?.("navigation") ?? [];
  if (navigation?.type === "back_forward") reloadList().catch((error) => say(error.message));
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) reloadList().catch((error) => say(error.message));
  });
  more.addEventListener("click", loadMore);
  if ("IntersectionObserver" in window) {
    // Load the next page before the end of the list comes into view.
    new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), {
      root: nav || null,
      rootMargin: "400px 0px",
    }).observe(more);
  }
}

// --- the ⋯ menu -----------------------------------------------------------------------

let menuItem = null; // the <li> the menu is open on

function closeMenu({ focus = false } = {}) {
  if (!menu || menu.hidden) return;
  menu.hidden = true;
  const button = menuItem?.querySelector(".conv-menu-button");
  button?.setAttribute("aria-expanded", "false");
  if (focus) button?.focus();
  menuItem = null;
}

function openMenu(item) {
  closeMenu();
  menuItem = item;
  const id = item.dataset.id;
  const pinned = item.hasAttribute("data-pinned");
  const archived = item.hasAttribute("data-archived");
  menu.querySelector("[data-action=pin]").textContent = pinned ? "Unpin" : "Pin";
  menu.querySelector("[data-action=pin]").hidden = archived;
  menu.querySelector("[data-action=archive]").textContent = archived ? "Unarchive" : "Archive";
  menu.querySelector("[data-action=export-md]").href = `/c/${id}/export.md`;
  menu.querySelector("[data-action=export-json]").href = `/c/${id}/export.json`;
  item.append(menu);
  menu.hidden = false;
  item.querySelector(".conv-menu-button").setAttribute("aria-expanded", "true");
  menu.querySelector("[role=menuitem]:not([hidden])").focus();
}

function startRename(item) {
  const link = item.querySelector("a[data-testid=conversation-link]");
  const input = document.createElement("input");
  input.type = "text";
  input.className = "rename-input";
  input.dataset.testid = "rename-input";
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title (Enter to save, Esc to cancel)");
  input.value = link.hasAttribute("data-untitled") ? "" : link.textContent;
  link.hidden = true;
  link.after(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== link.textContent) {
      try {
        const saved = await request(`/c/${item.dataset.id}/rename/`, { method: "POST", data: { title } });
        renameItem(list, item.dataset.id, saved.title);
        say("");
      } catch (error) {
        say(error.message);
      }
    }
    input.remove();
    link.hidden = false;
  };
  input.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // not the chat page's Esc (stop the answer)
      finish(false);
      link.focus();
    }
  });
  input.addEventListener("blur", () => finish(true));
}

async function togglePin(item) {
  const pinned = !item.hasAttribute("data-pinned");
  await request(`/c/${item.dataset.id}/pin/`, { method: "POST", data: { pinned: pinned ? "1" : "0" } });
  if (pinned) {
    item.setAttribute("data-pinned", "");
    groupList(list, "pinned", "Pinned").prepend(item);
    tidy(list);
  } else {
    await reloadList(); // back among the days: the server knows where it belongs
  }
}

async function toggleArchive(item) {
  const archived = !item.hasAttribute("data-archived");
  await request(`/c/${item.dataset.id}/archive/`, { method: "POST", data: { archived: archived ? "1" : "0" } });
  item.remove();
  tidy(list);
  say(archived ? "Archived. Find it under “Archived”." : "Back in your conversations.");
}

function confirmDelete(item) {
  dialog.querySelector("[data-field=title]").textContent = item.querySelector("a").textContent;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    async () => {
      if (dialog.returnValue !== "delete") return;
      try {
        await request(`/c/${item.dataset.id}/delete/`, { method: "POST" });
      } catch (error) {
        say(error.message);
        return;
      }
      if (item.dataset.id === currentId()) {
        location.assign("/"); // the page showed what no longer exists
        return;
      }
      item.remove();
      tidy(list);
      say("Deleted.");
    },
    { once: true },
  );
  dialog.showModal();
}

async function act(action, item) {
  closeMenu();
  try {
    if (action === "rename") startRename(item);
    else if (action === "pin") await togglePin(item);
    else if (action === "archive") await toggleArchive(item);
    else if (action === "delete") confirmDelete(item);
  } catch (error) {
    say(error.message);
  }
}

if (list && menu) {
  list.addEventListener("click", (event) => {
    const button = event.target.closest(".conv-menu-button");
    if (button) {
      event.preventDefault();
      const item = button.closest("li.conv-item");
      if (menuItem === item && !menu.hidden) closeMenu();
      else openMenu(item);
      return;
    }
    const entry = event.target.closest("#conv-menu [data-action]");
    if (!entry) return;
    if (entry.tagName === "A") {
      closeMenu(); // a download: let the browser have it
      return;
    }
    event.preventDefault();
    act(entry.dataset.action, menuItem);
  });
  menu.addEventListener("keydown", (event) => {
    const entries = [...menu.querySelectorAll("[role=menuitem]:not([hidden])")];
    const index = entries.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu({ focus: true });
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      entries[(index + step + entries.length) % entries.length].focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !event.target.closest("#conv-menu, .conv-menu-button")) closeMenu();
  });
}

// --- search ---------------------------------------------------------------------------

let searchTimer = 0;
let searchSeq = 0;

async function runSearch(query) {
  const seq = ++searchSeq;
  if (!query) {
    if (searchResults.id === "search-results") {
      searchResults.hidden = true;
      searchResults.replaceChildren();
      if (nav) nav.hidden = false;
    }
    return;
  }
  try {
    const found = await request(`/search/?${new URLSearchParams({ q: query, partial: "1" })}`);
    if (seq !== searchSeq) return; // a later search has been typed meanwhile
    searchResults.replaceChildren(...fragment(found.html));
    searchResults.hidden = false;
    if (nav && searchResults.id === "search-results") nav.hidden = true;
    if (searchResults.id === "search-page-results") {
      history.replaceState(null, "", `/search/?${new URLSearchParams({ q: query })}`);
    }
  } catch (error) {
    if (seq === searchSeq) say(error.message);
  }
}

if (searchInput && searchResults) {
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(searchInput.value.trim()), SEARCH_DELAY_MS);
  });
  searchInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && searchInput.value) {
      event.preventDefault();
      event.stopPropagation();
      searchInput.value = "";
      runSearch("");
    } else if (event.key === "Escape") {
      event.stopPropagation();
      searchInput.blur();
    }
  });
}

// --- keyboard shortcuts ---------------------------------------------------------------

function typingIn(target) {
  return target instanceof HTMLElement && (target.isContentEditable || target.matches("input, textarea, select"));
}

document.addEventListener("keydown", (event) => {
  if (event.isComposing) return;
  const mod = event.ctrlKey || event.metaKey;
  if (mod && event.shiftKey && event.code === "KeyO") {
    event.preventDefault();
    location.assign($("[data-testid=new-chat]")?.href || "/");
  } else if (searchInput && ((mod && !event.shiftKey && event.code === "KeyK") || (event.key === "/" && !mod && !event.altKey && !typingIn(event.target)))) {
    event.preventDefault();
    searchInput.focus();
    searchInput.select();
  }
});

// --- opening at a search hit ----------------------------------------------------------

function showTarget() {
  const match = location.hash.match(/^#(m-[0-9a-f-]{36})$/);
  const target = match && document.getElementById(match[1]);
  if (!target) return;
  target.classList.add("msg-target");
  // Messages above it render (Markdown) after load and change height: keep it in view for
  // a moment, unless the person starts scrolling themselves.
  let keep = true;
  const stop = () => {
    keep = false;
  };
  for (const type of ["wheel", "touchstart", "keydown", "mousedown"]) {
    window.addEventListener(type, stop, { once: true, passive: true });
  }
  const until = performance.now() + 1500;
  const follow = () => {
    if (!keep) return;
    target.scrollIntoView({ block: "center" });
    if (performance.now() < until) requestAnimationFrame(follow);
  };
  follow();
}

if (document.readyState === "complete") showTarget();
else window.addEventListener("load", showTarget, { once: true });
