// karta.js: the one script a page includes. It defines <karta-chat>, exposes the headless
// client as `window.Karta`, and, when its own <script> tag names an embed key, adds the
// floating chat launcher to the page:
//
//   <script src="https://agent.example/widget/v1/karta.js"
//           data-embed-key="pk_live_…" data-project="acme/support" async></script>
//
// Optional: data-base-url (default: where this script came from), data-mode ("launcher",
// "inline" into data-target, "page"), data-target (a CSS selector), data-title,
// data-user-id with data-identity-token, and data-theme-<property> (e.g. data-theme-accent).

import { KartaClient, KartaError } from "./client.js";
import { KartaChat } from "./element.js";
import { renderMarkdown, safeUrl } from "./markdown.js";

if (!customElements.get("karta-chat")) customElements.define("karta-chat", KartaChat);

function mount(script) {
  const data = script.dataset;
  if (!data.embedKey) return null;
  const chat = document.createElement("karta-chat");
  chat.setAttribute("embed-key", data.embedKey);
  chat.setAttribute("project", data.project || "");
  chat.setAttribute("base-url", data.baseUrl || new URL(script.src, location.href).origin);
  for (const name of ["title", "userId", "identityToken"]) {
    if (data[name]) chat.setAttribute(name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), data[name]);
  }
  for (const [name, value] of Object.entries(data)) {
    const property = /^theme([A-Z].*)$/.exec(name);
    if (property) {
      const css = property[1].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).slice(1);
      chat.style.setProperty(`--karta-${css}`, value);
    }
  }
  const target = data.target ? document.querySelector(data.target) : null;
  chat.setAttribute("mode", data.mode || (target ? "inline" : "launcher"));
  (target || document.body).append(chat);
  return chat;
}

const script = document.currentScript;
let mounted = null;
if (script) {
  const start = () => (mounted = mount(script));
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
}

globalThis.Karta = {
  KartaClient,
  KartaError,
  KartaChat,
  renderMarkdown,
  safeUrl,
  get widget() {
    return mounted;
  },
};
