// The conversation list: a new chat joins it, and takes its title from the first message.

/** Put a just-created conversation at the top, as the current one. */
export function addConversation(list, id, url) {
  list.querySelector(".conversation-empty")?.remove();
  for (const link of list.querySelectorAll("a.current")) {
    link.classList.remove("current");
    link.removeAttribute("aria-current");
  }
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = url;
  link.dataset.testid = "conversation-link";
  link.dataset.untitled = "";
  link.dataset.id = id;
  link.className = "current";
  link.setAttribute("aria-current", "page");
  link.textContent = "New chat";
  item.append(link);
  list.prepend(item);
}

/** A message was sent in the current conversation: show the title the server gave it,
 * move it up. */
export function touchCurrent(list, title) {
  const link = list.querySelector("a.current");
  if (!link) return;
  if (link.hasAttribute("data-untitled") && title) {
    link.textContent = title;
    link.removeAttribute("data-untitled");
    document.title = `${link.textContent} · Ollama Chat`;
  }
  // Most recent activity first, as the server orders it.
  const item = link.closest("li");
  if (item && item !== list.firstElementChild) list.prepend(item);
}
