// The defaults page (/settings/defaults/): the user's settings for new conversations.

import { loadModels } from "./models.js";
import { SettingsForm } from "./settings.js";

const form = document.getElementById("settings-form");
const notice = document.getElementById("notice");
const settings = JSON.parse(document.getElementById("settings-data").textContent);

const controller = new SettingsForm(form, { url: () => "/settings/defaults/" });
controller.fill(settings);
// "" is a real choice here: new chats then use the server's DEFAULT_MODEL.
loadModels(form.elements.namedItem("model"), settings.model || "", (text) => {
  notice.textContent = text;
}, { emptyLabel: "Server default" });
