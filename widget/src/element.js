// <karta-chat>: the chat widget, a framework-free web component in its own Shadow DOM, drawn
// from the headless KartaClient's events.
//
//   <karta-chat embed-key="pk_live_…" project="acme/support" mode="inline"></karta-chat>
//
// Attributes: embed-key, project ("org/project"), base-url (default: where karta.js came
// from), mode ("inline" | "launcher": a floating button that opens a panel | "page": full
// page), title (default: the project's name), user-id and identity-token (a verified user).

import { KartaClient, normalizePart } from "./client.js";
import { renderMarkdown } from "./markdown.js";
import { STYLES, THEME_DEFAULTS, themeRule } from "./styles.js";

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  chat: ["M5 5h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-8l-5 4v-4H5a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2z"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  send: ["M12 19V5", "M5.5 11.5L12 5l6.5 6.5"],
  stop: [],
  compose: ["M12 5v14", "M5 12h14"],
  tool: ["M13 3L5 14h6l-1 7 8-11h-6z"],
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  cross: ["M7 7l10 10", "M17 7L7 17"],
};
const APPROVALS = [
  ["approve_once", "Approve once", "btn primary"],
  ["approve_session", "Allow for this chat", "btn"],
  ["deny", "Deny", "btn danger"],
];
const TOOL_TARGET_KEYS = ["file_path", "path", "command", "url", "pattern", "query"];

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (name === "stop") {
    const rect = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ x: 7, y: 7, width: 10, height: 10, rx: 2, fill: "currentColor" })) {
      rect.setAttribute(k, String(v));
    }
    svg.append(rect);
    return svg;
  }
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", name === "tool" ? "currentColor" : "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", name === "tool" ? "1" : "2");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
  }
  return svg;
}

/** An element with attributes (`text` sets its text content, `class` its class). */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter(Boolean));
  return node;
}

function toolTarget(part) {
  const input = part.input || {};
  for (const key of TOOL_TARGET_KEYS) if (typeof input[key] === "string") return input[key];
  return null;
}

function toolChip(part) {
  const status = part.status === "completed" ? "completed" : part.status === "error" ? "error" : "running";
  const symbol = status === "completed" ? "check" : status === "error" ? "cross" : "tool";
  const target = toolTarget(part);
  const label = { completed: "done", error: "failed", running: "running" }[status];
  return h(
    "div",
    { class: "tool", "data-status": status, role: "status", "aria-label": `${part.tool} ${label}` },
    h("span", { class: "tool-icon" }, icon(symbol)),
    h("strong", { text: part.tool }),
    target ? h("span", { class: "target", text: target }) : null,
  );
}

function bubble(text) {
  const node = h("div", { class: "bubble" });
  node.append(renderMarkdown(text));
  return node;
}

export class KartaChat extends HTMLElement {
  static get observedAttributes() {
    return ["title"];
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this.client = null;
    this._built = false;
    this._live = null;
    this._approvalFor = null;
  }

  connectedCallback() {
    if (this._built) return;
    this._built = true;
    if (!this.getAttribute("mode")) this.setAttribute("mode", "inline");
    this._build();
    this._start();
  }

  disconnectedCallback() {
    this.client?.shutdown();
  }

  attributeChangedCallback() {
    if (this._title) this._title.textContent = this._displayTitle();
  }

  // --- structure ----------------------------------------------------------------------------

  _build() {
    const root = this.shadowRoot;
    const base = h("style", { text: STYLES });
    this._theme = h("style", { text: themeRule(THEME_DEFAULTS) });
    this._serverTheme = h("style");
    root.append(this._theme, this._serverTheme, base);

    this._avatar = h("div", { class: "avatar", "aria-hidden": "true" }, icon("chat"));
    this._title = h("div", { class: "title", id: "karta-title", text: this._displayTitle() });
    this._status = h("div", { class: "status", role: "status", "aria-live": "polite", "data-state": "idle", text: "Connecting…" });
    this._newButton = h(
      "button",
      { class: "icon-button", type: "button", "aria-label": "New conversation", title: "New conversation", onclick: () => this._newConversation() },
      icon("compose"),
    );
    const closeButton =
      this.getAttribute("mode") === "launcher"
        ? h("button", { class: "icon-button", type: "button", "aria-label": "Close chat", onclick: () => this.close() }, icon("close"))
        : null;
    const header = h(
      "header",
      { class: "header" },
      h("div", { class: "header-inner" }, this._avatar, h("div", { class: "titles" }, this._title, this._status), this._newButton, closeButton),
    );

    this._logInner = h("div", { class: "log-inner" });
    this._log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" }, this._logInner);

    this._input = h("textarea", {
      id: "karta-input",
      rows: "1",
      placeholder: "Write a message…",
      "aria-label": "Message",
      disabled: true,
    });
    this._input.addEventListener("input", () => this._resize());
    this._input.addEventListener("keydown", (e) => this._keydown(e));
    this._send = h("button", { class: "send", type: "submit", "aria-label": "Send message", disabled: true }, icon("send"));
    this._stopButton = h(
      "button",
      { class: "stop", type: "button", "aria-label": "Stop the reply", hidden: true, onclick: () => this._interrupt() },
      icon("stop"),
    );
    const form = h(
      "form",
      { class: "composer-inner", onsubmit: (e) => (e.preventDefault(), this._submit()) },
      h("label", { class: "sr-only", for: "karta-input", text: "Message" }),
      h("div", { class: "field" }, this._input, this._send, this._stopButton),
      h("div", { class: "footer", text: "Powered by Karta" }),
    );
    this._composer = h("div", { class: "composer" }, form);

    this._panel = h(
      "section",
      { class: "panel", "aria-labelledby": "karta-title", part: "panel" },
      header,
      this._log,
      this._composer,
    );
    root.append(this._panel);

    if (this.getAttribute("mode") === "launcher") {
      this._launcher = h(
        "button",
        {
          class: "launcher",
          type: "button",
          "aria-label": "Open chat",
          "aria-expanded": "false",
          onclick: () => (this._panel.hidden ? this.open() : this.close()),
        },
        icon("chat"),
      );
      root.append(this._launcher);
      this._panel.hidden = !this.hasAttribute("open");
      this._panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && !this.client?.turn) this.close();
      });
    }
  }

  _displayTitle() {
    return this.getAttribute("title") || this.client?.config?.project?.name || "Chat";
  }

  open() {
    if (!this._launcher) return;
    this._panel.hidden = false;
    this._launcher.setAttribute("aria-expanded", "true");
    this._launcher.replaceChildren(icon("close"));
    this._launcher.setAttribute("aria-label", "Close chat");
    this._scrollDown(true);
    this._input.focus();
  }

  close() {
    if (!this._launcher) return;
    this._panel.hidden = true;
    this._launcher.setAttribute("aria-expanded", "false");
    this._launcher.replaceChildren(icon("chat"));
    this._launcher.setAttribute("aria-label", "Open chat");
    this._launcher.focus();
  }

  // --- talking to Karta ----------------------------------------------------------------------

  async _start() {
    const options = {
      embedKey: this.getAttribute("embed-key"),
      project: this.getAttribute("project"),
      baseUrl: this.getAttribute("base-url") || "",
      userId: this.getAttribute("user-id"),
      identityToken: this.getAttribute("identity-token"),
    };
    try {
      this.client = new KartaClient(options);
    } catch (error) {
      this._fatal(error);
      return;
    }
    this.client.on("status", (state) => this._setStatus(state));
    this.client.on("turn", (turn) => this._renderTurn(turn));
    this.client.on("error", (error) => this._note(error.message || "Something went wrong"));
    let restored;
    try {
      restored = await this.client.connect();
    } catch (error) {
      this._fatal(error);
      return;
    }
    const { config, messages } = restored;
    this._serverTheme.textContent = themeRule(config.theme || {});
    this._title.textContent = this._displayTitle();
    this._avatar.textContent = (config.project?.name || "K").trim().charAt(0).toUpperCase();
    this._input.placeholder = `Message ${config.project?.name || "us"}…`;
    this._logInner.replaceChildren();
    if (!messages.length) this._welcome(config);
    for (const message of messages) this._logInner.append(this._message(message));
    this._input.disabled = false;
    this._updateComposer();
    this._scrollDown(true);
    this.dispatchEvent(new CustomEvent("karta:ready", { detail: { config } }));
    await this.client.resume();
  }

  _fatal(error) {
    const code = error.code || "error";
    const origin = code === "origin_not_allowed" || code === "key_disabled";
    this._setStatus("error");
    this._status.textContent = "Unavailable";
    this._logInner.replaceChildren(
      h(
        "div",
        { class: "notice", role: "alert", "data-error": code },
        h("strong", { text: origin ? "This chat isn't available on this site." : "The chat could not start." }),
        h("span", { text: error.message || String(error) }),
      ),
    );
    this._input.disabled = true;
    this._send.disabled = true;
    this.dispatchEvent(new CustomEvent("karta:error", { detail: { code, message: error.message } }));
  }

  _welcome(config) {
    const name = config.project?.name || "us";
    this._logInner.append(
      h(
        "div",
        { class: "welcome" },
        h("strong", { text: `Chat with ${name}` }),
        h("span", { text: "Ask a question and we'll answer right here." }),
      ),
    );
  }

  _setStatus(state) {
    this._status.dataset.state = state;
    this._status.textContent =
      { idle: "Online", streaming: "Replying…", reconnecting: "Reconnecting…", error: "Something went wrong" }[state] || "";
    this._updateComposer();
  }

  _updateComposer() {
    const running = Boolean(this.client?.turn);
    this._send.hidden = running;
    this._stopButton.hidden = !running;
    this._send.disabled = this._input.disabled || !this._input.value.trim();
    this._newButton.disabled = running;
  }

  _resize() {
    this._input.style.height = "auto";
    this._input.style.height = `${Math.min(this._input.scrollHeight, 160)}px`;
    this._updateComposer();
  }

  _keydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this._submit();
    } else if (event.key === "Escape" && this.client?.turn) {
      event.preventDefault();
      this._interrupt();
    }
  }

  async _submit() {
    const text = this._input.value.trim();
    if (!text || !this.client || this.client.turn) return;
    this._input.value = "";
    this._resize();
    this._logInner.querySelector(".welcome")?.remove();
    this._logInner.append(this._message({ role: "user", text, parts: [] }));
    this._scrollDown(true);
    try {
      await this.client.send(text);
    } catch (error) {
      this._note(error.message || "The message could not be sent");
    }
    this._input.focus();
  }

  async _interrupt() {
    try {
      await this.client?.interrupt();
    } catch (error) {
      this._note(error.message || "Could not stop the reply");
    }
  }

  _newConversation() {
    if (!this.client || this.client.turn) return;
    this.client.newConversation();
    this._logInner.replaceChildren();
    this._welcome(this.client.config || {});
    this._input.focus();
  }

  // --- drawing messages ----------------------------------------------------------------------

  _message(message) {
    const node = h("div", { class: `message ${message.role}`, "data-role": message.role });
    if (message.role === "user") {
      node.append(h("div", { class: "bubble", text: message.text }));
      return node;
    }
    this._fillAssistant(node, message.parts.map((p) => (p.kind ? p : normalizePart(p))), true);
    return node;
  }

  _fillAssistant(node, parts, done) {
    const children = [];
    for (const part of parts) {
      if (part.kind === "text" && part.text) children.push(bubble(part.text));
      else if (part.kind === "reasoning" && part.text) children.push(h("div", { class: "reasoning", text: part.text }));
      else if (part.kind === "tool") children.push(toolChip(part));
    }
    if (!done && !parts.some((p) => p.kind === "text" && p.text)) {
      children.push(h("div", { class: "bubble typing", "aria-label": "Typing" }, h("span"), h("span"), h("span")));
    }
    node.replaceChildren(...children);
  }

  _renderTurn(turn) {
    const follow = this._nearBottom();
    if (!this._live) {
      if (turn.done && !turn.parts.length && !turn.errors.length) return;
      this._logInner.querySelector(".welcome")?.remove();
      if (turn.text && !this._logInner.lastElementChild?.matches?.(".message.user")) {
        this._logInner.append(this._message({ role: "user", text: turn.text, parts: [] }));
      }
      this._live = h("div", { class: "message assistant", "data-role": "assistant", "aria-busy": "true" });
      this._logInner.append(this._live);
    }
    this._fillAssistant(this._live, turn.parts, turn.done);
    for (const error of turn.errors) this._live.append(h("div", { class: "error-note", role: "alert", text: error.message }));
    if (turn.done && turn.status === "cancelled") this._live.append(h("div", { class: "cancelled-note", text: "Stopped." }));
    this._renderApproval(turn.pendingInput);
    if (turn.done) {
      this._live.removeAttribute("aria-busy");
      if (!this._live.childElementCount) this._live.remove();
      this._live = null;
    }
    this._updateComposer();
    this._scrollDown(follow);
  }

  _renderApproval(pending) {
    const id = pending?.request_id || null;
    if (id === this._approvalFor) return;
    this._approvalFor = id;
    this._logInner.querySelector(".approval")?.remove();
    if (!pending) return;
    const titleId = `karta-approval-${id}`;
    const buttons = APPROVALS.filter(([decision]) => !pending.options || pending.options.includes(decision)).map(
      ([decision, label, cls]) =>
        h("button", {
          class: cls,
          type: "button",
          "data-decision": decision,
          text: label,
          onclick: (e) => {
            for (const b of e.currentTarget.parentElement.querySelectorAll("button")) b.disabled = true;
            this.client.decide(id, decision);
          },
        }),
    );
    const card = h(
      "div",
      { class: "approval", role: "group", "aria-labelledby": titleId },
      h("h2", { id: titleId, text: `Allow ${pending.tool || "this action"}?` }),
      h("p", { text: pending.message || "The assistant asks for permission to continue." }),
      pending.target ? h("code", { class: "target", text: pending.target }) : null,
      h("div", { class: "actions" }, ...buttons),
    );
    this._logInner.append(card);
    buttons[0]?.focus({ preventScroll: true });
  }

  _note(text) {
    this._logInner.append(h("div", { class: "error-note", role: "alert", text }));
    this._scrollDown(true);
  }

  _nearBottom() {
    const log = this._log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  _scrollDown(force) {
    if (force) this._log.scrollTop = this._log.scrollHeight;
  }
}
