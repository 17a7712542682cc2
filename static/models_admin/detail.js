// The model detail page: its forms answer in the notice instead of reloading the page.
import { enhanceForms } from "./actions.js";

const notice = document.getElementById("models-notice");
enhanceForms(document.querySelector("main"), notice, (action, data, form, sent) => {
  if (action === "copy" && data.ok && form.elements.destination.value === sent.get("destination")) {
    form.reset();
  }
});
