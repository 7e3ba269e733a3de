// The headless Karta chat client: everything the <karta-chat> widget does, without a UI.
//
//   import { KartaClient } from "https://agent.example/widget/v1/client.mjs";
//   const chat = new KartaClient({ embedKey: "pk_live_…", project: "acme/support" });
//   chat.on("turn", (turn) => render(turn));       // the running reply, as it streams
//   const { messages } = await chat.connect();      // config, token, the earlier conversation
//   await chat.resume();                            // a reply still running before a reload
//   await chat.send("Where is my order?");
//
// It trades the publishable key for a short-lived session token (`POST /v1/embed/session-tokens`,
// refreshed before it expires), keeps an anonymous browser's id and its session id in
// localStorage, streams each reply over fetch (SSE), and after a dropped connection resumes the
// stream with `Last-Event-ID` so that no text is lost or shown twice.

import { frames } from "./sse.js";

const RECONNECT_DELAYS = [250, 500, 1000, 2000, 4000, 8000];
const REFRESH_MARGIN_MS = 60_000;
const TRANSCRIPT_PAGE = 1000;

export class KartaError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.name = "KartaError";
    this.status = status;
    this.code = body?.error || "http_error";
    this.body = body;
  }

  static async from(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { error: "http_error", message: `HTTP ${response.status}` };
    }
    return new KartaError(response.status, body);
  }
}

function memoryStorage() {
  const items = new Map();
  return {
    get: (k) => (items.has(k) ? items.get(k) : null),
    set: (k, v) => items.set(k, v),
    remove: (k) => items.delete(k),
  };
}

/** localStorage when the page may use it (sandboxed frames and some private modes may not). */
export function browserStorage() {
  try {
    const ls = globalThis.localStorage;
    const probe = "karta:probe";
    ls.setItem(probe, "1");
    ls.removeItem(probe);
    return {
      get: (k) => ls.getItem(k),
      set: (k, v) => ls.setItem(k, v),
      remove: (k) => ls.removeItem(k),
    };
  } catch {
    return memoryStorage();
  }
}

function readJSON(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** A transcript or streamed part, in one shape: {kind: "text"|"reasoning"|"tool", …}. */
export function normalizePart(part) {
  if (part.type === "tool") {
    const state = part.state || {};
    return {
      kind: "tool",
      id: part.id,
      tool: part.tool || "tool",
      input: state.input || part.input || {},
      status: state.status || part.status || "running",
      output: state.output ?? part.output ?? null,
    };
  }
  return { kind: part.type === "reasoning" ? "reasoning" : "text", id: part.id, text: part.text || "" };
}

/** The messages of a transcript, each {id, role, parts, text}. */
function fromTranscript(messages) {
  return messages.map((m) => ({
    id: m.id,
    role: m.role,
    text: m.text,
    parts: (m.parts || []).map(normalizePart),
  }));
}

/** Drop the running turn from a transcript: its user message (and anything after it) is the
 *  one the client replays from the event log instead. */
function withoutRunning(messages, text) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === "user" && messages[i].text.trim() === text.trim()) {
      return messages.slice(0, i);
    }
  }
  return messages;
}

export class KartaClient {
  /**
   * @param {object} options
   * @param {string} options.embedKey the project's publishable key, `pk_live_…`
   * @param {string} options.project "org/project"
   * @param {string} [options.baseUrl] the data plane (default: this page's origin)
   * @param {string} [options.userId] a signed-in user of the site, with…
   * @param {string} [options.identityToken] …the HMAC your backend computed for them
   */
  constructor(options) {
    const { embedKey, project, baseUrl = "", userId = null, identityToken = null } = options;
    if (!embedKey || !project) throw new Error("KartaClient needs embedKey and project (org/project)");
    this.embedKey = embedKey;
    this.project = project;
    this.ref = project.split("/").pop();
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.storage = options.storage || browserStorage();
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this.identity = userId ? { userId, identityToken } : null;
    this.config = null;
    this.token = null;
    this.sub = null;
    this.verified = false;
    this.session = null;
    this.lastSeq = 0;
    this.turn = null;
    this._listeners = new Map();
    this._stop = new AbortController();
  }

  // --- events -------------------------------------------------------------------------------

  /** Listen: "event" (each Karta event), "turn" (the running reply changed), "status"
   *  ("idle" | "streaming" | "reconnecting" | "error"), "error". Returns an unsubscribe. */
  on(type, handler) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(handler);
    return () => this._listeners.get(type)?.delete(handler);
  }

  _emit(type, detail) {
    for (const handler of this._listeners.get(type) || []) {
      try {
        handler(detail);
      } catch (error) {
        console.error("karta: a listener failed", error);
      }
    }
  }

  // --- HTTP ---------------------------------------------------------------------------------

  _key(name) {
    return `karta:${this.project}:${name}`;
  }

  _userKey(name) {
    return this._key(`${this.sub}:${name}`);
  }

  _route(tail) {
    return `/v1/projects/${encodeURIComponent(this.ref)}${tail}`;
  }

  _sessionRoute(tail = "") {
    return this._route(`/sessions/${encodeURIComponent(this.session.id)}${tail}`);
  }

  async _request(method, path, { body, headers = {}, auth = true, retry = true } = {}) {
    const sent = { ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (auth) sent.Authorization = `Bearer ${await this._bearer()}`;
    const response = await this._fetch(this.baseUrl + path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      mode: "cors",
      credentials: "omit",
      signal: this._stop.signal,
    });
    if (response.status === 401 && auth && retry) {
      this.token = null; // expired or rotated: mint another, once
      return this._request(method, path, { body, headers, auth, retry: false });
    }
    if (!response.ok) throw await KartaError.from(response);
    return response;
  }

  async _json(method, path, options) {
    const response = await this._request(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  /** The widget's config: {project: {organization, slug, name}, theme, flags}. */
  async loadConfig() {
    const query = `?embed_key=${encodeURIComponent(this.embedKey)}`;
    this.config = await this._json("GET", `/v1/embed/config${query}`, { auth: false });
    return this.config;
  }

  async _bearer() {
    if (this.token && this.token.expiresAt - Date.now() > REFRESH_MARGIN_MS) return this.token.value;
    const body = { embed_key: this.embedKey };
    if (this.identity) {
      body.user_id = this.identity.userId;
      body.identity_token = this.identity.identityToken;
    } else {
      const anonymous = this.storage.get(this._key("anonymous_id"));
      if (anonymous) body.anonymous_id = anonymous;
    }
    const answer = await this._json("POST", "/v1/embed/session-tokens", { body, auth: false });
    if (answer.anonymous_id) this.storage.set(this._key("anonymous_id"), answer.anonymous_id);
    if (this.sub !== null && this.sub !== answer.sub) this.session = null; // someone else now
    this.sub = answer.sub;
    this.verified = answer.verified;
    this.token = { value: answer.token, expiresAt: Date.parse(answer.expires_at) };
    return this.token.value;
  }

  /** Sign a user in (their id and your backend's identity token) or out (no arguments):
   *  the next request mints a token for them, with their own sessions. */
  identify({ userId = null, identityToken = null } = {}) {
    this.identity = userId ? { userId, identityToken } : null;
    this.token = null;
    this.session = null;
    this.turn = null;
  }

  // --- the conversation ---------------------------------------------------------------------

  /**
   * Load the config, get a token, and restore this browser's conversation. Returns
   * {config, messages, pendingInput}; call `resume()` after drawing them, to pick up a reply
   * that was still running when the page was left.
   */
  async connect() {
    await this.loadConfig();
    await this._bearer();
    let messages = [];
    const saved = this.storage.get(this._userKey("session"));
    if (saved) {
      try {
        this.session = await this._json("GET", this._route(`/sessions/${encodeURIComponent(saved)}`));
      } catch (error) {
        if (error.status !== 404) throw error;
        this.storage.remove(this._userKey("session"));
      }
    }
    if (this.session && this.session.status !== "active") this._forgetSession();
    if (this.session) {
      this.lastSeq = this.session.last_event_seq;
      messages = fromTranscript(await this._transcript());
      const running = readJSON(this.storage.get(this._userKey("turn")));
      if (this.session.turn_running || this.session.pending_input) {
        if (running) {
          messages = withoutRunning(messages, running.text);
          this._resumable = running;
        } else {
          this._resumable = { text: null, after: this.lastSeq };
        }
      } else {
        this.storage.remove(this._userKey("turn"));
      }
    }
    this._emit("status", "idle");
    return { config: this.config, messages };
  }

  async _transcript() {
    const out = [];
    let after = null;
    for (;;) {
      const query = `?limit=${TRANSCRIPT_PAGE}` + (after ? `&after=${encodeURIComponent(after)}` : "");
      const page = await this._json("GET", this._sessionRoute(`/messages${query}`));
      out.push(...page.data);
      if (!page.has_more) return out;
      after = page.next_cursor;
    }
  }

  /** Follow the reply that was running when the page was left (after `connect()`). */
  async resume() {
    const running = this._resumable;
    this._resumable = null;
    if (!running || !this.session) return;
    this.lastSeq = running.after; // replay the whole reply, from before it started
    this._startTurn(running.text, running.after);
    await this._follow(null);
  }

  _forgetSession() {
    this.storage.remove(this._userKey("session"));
    this.storage.remove(this._userKey("turn"));
    this.session = null;
    this.lastSeq = 0;
  }

  /** Start over: the next message opens a new session. */
  newConversation() {
    if (this.turn) throw new Error("stop the running reply first");
    this._forgetSession();
  }

  async _open() {
    this.session = await this._json("POST", this._route("/sessions"), { body: { metadata: {} } });
    this.lastSeq = this.session.last_event_seq;
    this.storage.set(this._userKey("session"), this.session.id);
  }

  /** Send a message; resolves when its reply is done (approvals included). */
  async send(text) {
    if (this.turn) throw new Error("a reply is still running");
    if (!this.session) await this._open();
    const after = this.lastSeq;
    this._startTurn(text, after);
    this.storage.set(this._userKey("turn"), JSON.stringify({ text, after }));
    let response = null;
    try {
      response = await this._request("POST", this._sessionRoute("/messages"), {
        body: { text, stream: true },
      });
    } catch (error) {
      if (error instanceof KartaError) {
        this._endTurn("failed", { message: error.message, code: error.code });
        throw error;
      }
      // The connection failed: the message may have arrived, the event log says.
    }
    await this._follow(response);
  }

  _startTurn(text, after) {
    this.turn = {
      text,
      after,
      parts: [],
      pendingInput: this.session?.pending_input || null,
      errors: [],
      status: "running",
      done: false,
    };
    this._emit("status", "streaming");
    this._emit("turn", this.turn);
  }

  _endTurn(status, error) {
    const turn = this.turn;
    if (!turn) return;
    turn.status = status;
    turn.done = true;
    turn.pendingInput = null;
    if (error) turn.errors.push(error);
    this.turn = null;
    this.storage.remove(this._userKey("turn"));
    this._emit("turn", turn);
    this._emit("status", status === "failed" ? "error" : "idle");
  }

  async _follow(response) {
    let attempt = 0;
    while (this.turn && !this._stop.signal.aborted) {
      if (!response) {
        try {
          response = await this._request("GET", this._sessionRoute("/events"), {
            headers: { "Last-Event-ID": String(this.lastSeq) },
          });
        } catch (error) {
          if (this._stop.signal.aborted) return;
          if (error instanceof KartaError && ![429, 502, 503, 504].includes(error.status)) {
            this._endTurn("failed", { message: error.message, code: error.code });
            return;
          }
          this._emit("status", "reconnecting");
          await sleep(RECONNECT_DELAYS[Math.min(attempt++, RECONNECT_DELAYS.length - 1)], this._stop.signal);
          continue;
        }
      }
      let heard = false;
      try {
        for await (const frame of frames(response.body)) {
          heard = true;
          attempt = 0;
          this._frame(frame);
          if (!this.turn) break;
        }
      } catch {
        // the connection dropped: resume after the last event seen
      }
      response = null;
      if (!this.turn) return;
      this._emit("status", "reconnecting");
      if (!heard && !(await this._stillRunning())) {
        this._endTurn("failed", { message: "the reply was lost", code: "lost" });
        return;
      }
      await sleep(RECONNECT_DELAYS[Math.min(attempt++, RECONNECT_DELAYS.length - 1)], this._stop.signal);
    }
  }

  async _stillRunning() {
    try {
      const session = await this._json("GET", this._sessionRoute());
      return session.turn_running || Boolean(session.pending_input) || session.last_event_seq > this.lastSeq;
    } catch {
      return true; // cannot tell yet: keep trying
    }
  }

  _frame(frame) {
    let event;
    try {
      event = JSON.parse(frame.data);
    } catch {
      return;
    }
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return; // seen before a reconnect
      this.lastSeq = event.seq;
    }
    this._emit("event", event);
    this._apply(event);
  }

  _apply(event) {
    const turn = this.turn;
    if (!turn) return;
    const data = event.data || {};
    if (event.type === "text" || event.type === "reasoning") {
      const id = data.part?.id || `${event.type}-${turn.parts.length}`;
      let part = turn.parts.find((p) => p.id === id);
      if (!part) {
        part = { kind: event.type, id, text: "" };
        turn.parts.push(part);
      }
      part.text = data.delta === false ? data.part?.text || "" : part.text + (data.part?.text || "");
    } else if (event.type === "tool_use" && data.part) {
      const next = normalizePart(data.part);
      const index = turn.parts.findIndex((p) => p.id === next.id);
      if (index >= 0) turn.parts[index] = next;
      else turn.parts.push(next);
    } else if (event.type === "input_required") {
      turn.pendingInput = data;
      turn.status = "awaiting_input";
    } else if (event.type === "error") {
      turn.errors.push({ message: data.message || "something went wrong", code: data.code });
    } else if (event.type === "done") {
      this._endTurn(data.status || "completed");
      return;
    } else {
      return;
    }
    this._emit("turn", turn);
  }

  /** Answer the pending approval: "approve_once" | "approve_session" | "deny". */
  async decide(requestId, decision) {
    if (this.turn) {
      this.turn.pendingInput = null;
      this.turn.status = "running";
      this._emit("turn", this.turn);
    }
    // The answer waits for the continuation; the reply itself arrives on the open stream.
    const answer = this._request("PUT", this._sessionRoute(`/inputs/${encodeURIComponent(requestId)}`), {
      body: { decision },
    });
    answer.catch((error) => this._emit("error", error));
    await sleep(0);
  }

  /** Stop the running reply (it ends `cancelled`). */
  async interrupt() {
    if (!this.session) return;
    try {
      await this._json("POST", this._sessionRoute("/interrupt"));
    } catch (error) {
      if (error.code !== "no_turn_running") throw error;
    }
  }

  /** Stop streaming and forget listeners (the session stays, for the next page). */
  shutdown() {
    this._stop.abort();
    this._listeners.clear();
  }
}
