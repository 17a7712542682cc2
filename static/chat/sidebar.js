// The conversation list: groups by day (rendered by the server, chat/sidebar.py) with the
// pinned ones first. chat.js calls addConversation, touchCurrent and setTitle as the chat
// goes on; history.js (the list's own module) uses the rest. DOM built with textContent.

const UUID_PATH = /^\/c\/([0-9a-f-]{36})\//;

/** The uuid of the conversation this page shows, or null. */
export function currentId() {
  return location.pathname.match(UUID_PATH)?.[1] ?? null;
}

/** The <ul> of group `key`, made (in its place: Pinned, then Today) if missing. */
export function groupList(list, key, label) {
  let section = list.querySelector(`section.conv-group[data-group="${key}"]`);
  if (!section) {
    section = document.createElement("section");
    section.className = "conv-group";
    section.dataset.group = key;
    const heading = document.createElement("h2");
    heading.className = "conv-group-label";
    heading.textContent = label;
    const items = document.createElement("ul");
    items.className = "conv-items";
    section.append(heading, items);
    const pinned = list.querySelector('section.conv-group[data-group="pinned"]');
    if (key === "pinned" || !pinned) list.prepend(section);
    else pinned.after(section);
  }
  return section.querySelector("ul.conv-items");
}

/** Drop groups left empty, and say so when nothing is left. */
export function tidy(list) {
  for (const section of list.querySelectorAll("section.conv-group")) {
    if (!section.querySelector("li.conv-item")) section.remove();
  }
  const empty = list.querySelector(".conversation-empty");
  const hasItems = list.querySelector("li.conv-item") !== null;
  if (hasItems) empty?.remove();
  else if (!empty) {
    const note = document.createElement("p");
    note.className = "conversation-empty";
    note.textContent = list.dataset.archived === "1" ? "Nothing archived." : "No conversations yet.";
    list.append(note);
  }
}

function markCurrent(list, link) {
  for (const other of list.querySelectorAll("a.current")) {
    other.classList.remove("current");
    other.removeAttribute("aria-current");
  }
  if (link) {
    link.classList.add("current");
    link.setAttribute("aria-current", "page");
  }
}

/** One item, as templates/chat/_sidebar_item.html renders it. */
export function buildItem(id, url, title) {
  const item = document.createElement("li");
  item.className = "conv-item";
  item.dataset.id = id;
  const link = document.createElement("a");
  link.href = url;
  link.dataset.testid = "conversation-link";
  link.dataset.id = id;
  if (!title) link.dataset.untitled = "";
  link.textContent = title || "New chat";
  const menu = document.createElement("button");
  menu.type = "button";
  menu.className = "conv-menu-button";
  menu.dataset.testid = "conversation-menu";
  menu.setAttribute("aria-haspopup", "menu");
  menu.setAttribute("aria-label", `Actions for ${link.textContent}`);
  menu.title = "Rename, pin, archive, export, delete";
  menu.textContent = "⋯";
  item.append(link, menu);
  return item;
}

/** Show a new title on an item (and on the page, when it is the current one). */
export function renameItem(list, id, title) {
  const link = list.querySelector(`a[data-testid=conversation-link][data-id="${id}"]`);
  if (link) {
    link.textContent = title;
    link.removeAttribute("data-untitled");
    link.closest("li")?.querySelector(".conv-menu-button")?.setAttribute("aria-label", `Actions for ${title}`);
  }
  if (id === currentId()) {
    document.title = `${title} · Ollama Chat`;
    const heading = document.querySelector("#messages-empty h1");
    if (heading) heading.textContent = title;
  }
}

/** Put a just-created conversation at the top of Today, as the current one. */
export function addConversation(list, id, url) {
  const item = buildItem(id, url, "");
  groupList(list, "today", "Today").prepend(item);
  markCurrent(list, item.querySelector("a"));
  tidy(list);
}

/** A message was sent in the current conversation: show the title the server gave it,
 * move it to the top of Today (or of Pinned). */
export function touchCurrent(list, title) {
  const link = list.querySelector("a.current");
  if (!link) return; // archived, or on a page of the list not loaded yet
  if (link.hasAttribute("data-untitled") && title) renameItem(list, link.dataset.id, title);
  const item = link.closest("li");
  const target = item.hasAttribute("data-pinned")
    ? groupList(list, "pinned", "Pinned")
    : groupList(list, "today", "Today");
  if (target.firstElementChild !== item) target.prepend(item);
  tidy(list);
}

/** The `title` frame: the model named the conversation, or it was renamed in another tab. */
export function setTitle(list, title) {
  const id = currentId();
  if (id && title) renameItem(list, id, title);
}
