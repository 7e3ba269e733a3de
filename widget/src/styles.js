// The widget's styles, inside its Shadow DOM: a host page's CSS cannot reach in, and ours
// cannot leak out. Everything themable is a custom property on :host (`--karta-accent`, …);
// a page overrides them with `karta-chat { --karta-accent: … }`, the embed key's theme sets
// them for every page that uses the key.

export const THEME_DEFAULTS = {
  accent: "#4f46e5",
  "accent-text": "#ffffff",
  background: "#f6f6f8",
  surface: "#ffffff",
  text: "#1c1c24",
  muted: "#6b6b7b",
  border: "#e4e4ea",
  "user-bubble": "var(--karta-accent)",
  "user-text": "var(--karta-accent-text)",
  radius: "16px",
  "font-family": "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif",
  "font-size": "15px",
};

export function themeRule(theme) {
  const declarations = Object.entries(theme)
    .filter(([name, value]) => /^[a-z-]+$/.test(name) && /^[\w#%.,()\s\-/+]+$/.test(value) && !/url\(/i.test(value))
    .map(([name, value]) => `--karta-${name}: ${value};`)
    .join(" ");
  return `:host { ${declarations} }`;
}

export const STYLES = `
:host { all: initial; display: block; }
/* Typography is set below the host: the page's rules on <karta-chat> itself (even
   \`* { color: red !important }\`) are inherited by nothing of ours. */
.panel, .launcher {
  color-scheme: light;
  font-family: var(--karta-font-family);
  font-size: var(--karta-font-size);
  font-weight: 400;
  font-style: normal;
  letter-spacing: normal;
  text-align: left;
  line-height: 1.5;
  color: var(--karta-text);
  -webkit-font-smoothing: antialiased;
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
button { font: inherit; color: inherit; cursor: pointer; }
button:focus-visible, textarea:focus-visible, a:focus-visible {
  outline: 2px solid var(--karta-accent); outline-offset: 2px;
}

/* --- layout ------------------------------------------------------------------------------- */
.panel {
  display: flex; flex-direction: column; height: 100%; min-height: 0;
  background: var(--karta-background);
  border: 1px solid var(--karta-border);
  border-radius: var(--karta-radius);
  overflow: hidden;
}
:host([mode="launcher"]) .panel {
  position: fixed; right: 24px; bottom: 96px; z-index: 2147483646;
  width: min(400px, calc(100vw - 32px)); height: min(640px, calc(100vh - 128px));
  box-shadow: 0 24px 60px -12px rgba(20, 20, 40, .28), 0 4px 12px rgba(20, 20, 40, .08);
  transform-origin: bottom right;
  animation: karta-pop .18s ease-out;
}
:host([mode="page"]) .panel { border: 0; border-radius: 0; }
:host([mode="page"]) .log-inner, :host([mode="page"]) .composer-inner, :host([mode="page"]) .header-inner {
  max-width: 780px; margin: 0 auto; width: 100%;
}
@keyframes karta-pop { from { opacity: 0; transform: translateY(8px) scale(.98); } }

.launcher {
  position: fixed; right: 24px; bottom: 24px; z-index: 2147483647;
  width: 60px; height: 60px; border-radius: 50%; border: 0;
  background: var(--karta-accent); color: var(--karta-accent-text);
  display: grid; place-items: center;
  box-shadow: 0 10px 30px -6px rgba(20, 20, 40, .35);
  transition: transform .15s ease;
}
.launcher:hover { transform: scale(1.05); }
.launcher svg { width: 26px; height: 26px; }

/* --- header ------------------------------------------------------------------------------- */
.header { background: var(--karta-surface); border-bottom: 1px solid var(--karta-border); }
.header-inner { display: flex; align-items: center; gap: 12px; padding: 14px 16px; }
.avatar {
  flex: none; width: 38px; height: 38px; border-radius: 12px;
  background: var(--karta-accent); color: var(--karta-accent-text);
  display: grid; place-items: center; font-weight: 650; font-size: 16px;
}
.avatar svg { width: 20px; height: 20px; }
.titles { flex: 1; min-width: 0; }
.title { font-weight: 650; font-size: 15.5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.status { font-size: 12.5px; color: var(--karta-muted); display: flex; align-items: center; gap: 6px; }
.status::before {
  content: ""; width: 7px; height: 7px; border-radius: 50%; background: #22c55e;
}
.status[data-state="streaming"]::before { background: var(--karta-accent); animation: karta-pulse 1s infinite; }
.status[data-state="reconnecting"]::before { background: #f59e0b; animation: karta-pulse 1s infinite; }
.status[data-state="error"]::before { background: #ef4444; }
@keyframes karta-pulse { 50% { opacity: .35; } }
.icon-button {
  flex: none; width: 34px; height: 34px; border-radius: 10px; border: 0; background: transparent;
  display: grid; place-items: center; color: var(--karta-muted);
}
.icon-button:hover { background: var(--karta-background); color: var(--karta-text); }
.icon-button svg { width: 18px; height: 18px; }

/* --- conversation --------------------------------------------------------------------------- */
.log { flex: 1; min-height: 0; overflow-y: auto; scroll-behavior: smooth; }
.log-inner { display: flex; flex-direction: column; gap: 14px; padding: 20px 16px 8px; }
.welcome {
  text-align: center; color: var(--karta-muted); padding: 28px 12px 8px; font-size: 14px;
}
.welcome strong { display: block; color: var(--karta-text); font-size: 17px; margin-bottom: 4px; }
.message { display: flex; flex-direction: column; gap: 6px; max-width: 88%; }
.message.user { align-self: flex-end; align-items: flex-end; }
.message.assistant { align-self: flex-start; align-items: flex-start; }
.bubble {
  padding: 10px 14px; border-radius: 18px; overflow-wrap: anywhere;
}
.user .bubble {
  background: var(--karta-user-bubble); color: var(--karta-user-text); border-bottom-right-radius: 6px;
  white-space: pre-wrap;
}
.assistant .bubble {
  background: var(--karta-surface); border: 1px solid var(--karta-border); border-bottom-left-radius: 6px;
}
.bubble > :first-child { margin-top: 0; }
.bubble > :last-child { margin-bottom: 0; }
.bubble p { margin: 0 0 .6em; }
.bubble h3, .bubble h4, .bubble h5, .bubble h6 { margin: .8em 0 .4em; font-size: 1em; font-weight: 650; }
.bubble h3 { font-size: 1.1em; }
.bubble ul, .bubble ol { margin: .3em 0 .6em; padding-left: 1.4em; }
.bubble li + li { margin-top: .2em; }
.bubble blockquote { margin: .4em 0; padding-left: .8em; border-left: 3px solid var(--karta-border); color: var(--karta-muted); }
.bubble code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em;
  background: var(--karta-background); border-radius: 5px; padding: .1em .35em;
}
.bubble pre {
  margin: .5em 0; padding: 10px 12px; border-radius: 10px; overflow-x: auto;
  background: #17171f; color: #ececf1;
}
.bubble pre code { background: none; padding: 0; color: inherit; font-size: 13px; }
.bubble a { color: var(--karta-accent); text-decoration: underline; text-underline-offset: 2px; }
.bubble hr { border: 0; border-top: 1px solid var(--karta-border); margin: .8em 0; }
.reasoning { font-size: 13px; color: var(--karta-muted); font-style: italic; padding: 0 4px; white-space: pre-wrap; }
.error-note {
  font-size: 13px; color: #b42318; background: #fef3f2; border: 1px solid #fecdca;
  border-radius: 10px; padding: 8px 12px;
}
.cancelled-note { font-size: 12.5px; color: var(--karta-muted); padding: 0 4px; }

.typing { display: inline-flex; gap: 4px; padding: 14px 16px; }
.typing span {
  width: 7px; height: 7px; border-radius: 50%; background: var(--karta-muted); opacity: .5;
  animation: karta-bounce 1.2s infinite ease-in-out;
}
.typing span:nth-child(2) { animation-delay: .15s; }
.typing span:nth-child(3) { animation-delay: .3s; }
@keyframes karta-bounce { 0%, 80%, 100% { transform: translateY(0); } 40% { transform: translateY(-5px); opacity: .9; } }

/* --- tools and approvals -------------------------------------------------------------------- */
.tool {
  display: inline-flex; align-items: center; gap: 8px; max-width: 100%;
  font-size: 12.5px; color: var(--karta-muted);
  background: var(--karta-surface); border: 1px solid var(--karta-border); border-radius: 999px;
  padding: 5px 12px 5px 8px;
}
.tool .tool-icon { width: 18px; height: 18px; border-radius: 50%; display: grid; place-items: center; background: var(--karta-background); }
.tool .tool-icon svg { width: 11px; height: 11px; }
.tool strong { color: var(--karta-text); font-weight: 600; }
.tool .target { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tool[data-status="running"] .tool-icon, .tool[data-status="pending"] .tool-icon { animation: karta-pulse 1s infinite; }
.tool[data-status="completed"] .tool-icon { background: #dcfce7; color: #15803d; }
.tool[data-status="error"] .tool-icon { background: #fee2e2; color: #b91c1c; }

.approval {
  align-self: stretch; background: var(--karta-surface); border: 1px solid var(--karta-border);
  border-left: 4px solid var(--karta-accent); border-radius: 14px; padding: 14px 16px;
  box-shadow: 0 6px 20px -10px rgba(20, 20, 40, .25);
}
.approval h2 { margin: 0 0 4px; font-size: 14.5px; font-weight: 650; }
.approval p { margin: 0 0 10px; font-size: 13.5px; color: var(--karta-muted); }
.approval .target {
  display: block; margin: 0 0 12px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px;
  background: var(--karta-background); border-radius: 8px; padding: 6px 10px; overflow-wrap: anywhere;
}
.actions { display: flex; flex-wrap: wrap; gap: 8px; }
.btn {
  border-radius: 10px; padding: 8px 14px; font-size: 13.5px; font-weight: 600;
  border: 1px solid var(--karta-border); background: var(--karta-surface);
}
.btn:hover { background: var(--karta-background); }
.btn.primary { background: var(--karta-accent); color: var(--karta-accent-text); border-color: transparent; }
.btn.primary:hover { filter: brightness(1.08); }
.btn.danger { color: #b42318; }

/* --- composer ------------------------------------------------------------------------------- */
.composer { background: var(--karta-surface); border-top: 1px solid var(--karta-border); }
.composer-inner { padding: 12px 14px 8px; }
.field {
  display: flex; align-items: flex-end; gap: 8px;
  border: 1px solid var(--karta-border); border-radius: 14px; padding: 6px 6px 6px 14px;
  background: var(--karta-background); transition: border-color .15s, box-shadow .15s;
}
.field:focus-within { border-color: var(--karta-accent); box-shadow: 0 0 0 3px color-mix(in srgb, var(--karta-accent) 18%, transparent); }
textarea {
  flex: 1; resize: none; border: 0; outline: none; background: transparent; color: var(--karta-text);
  font: inherit; line-height: 1.45; padding: 7px 0; max-height: 160px; min-height: 22px;
}
textarea:focus-visible { outline: none; }
textarea::placeholder { color: var(--karta-muted); }
.send, .stop {
  flex: none; width: 36px; height: 36px; border-radius: 10px; border: 0;
  display: grid; place-items: center; background: var(--karta-accent); color: var(--karta-accent-text);
}
.send:disabled { opacity: .4; cursor: default; }
.stop { background: var(--karta-text); }
.send svg, .stop svg { width: 18px; height: 18px; }
.footer { text-align: center; font-size: 11px; color: var(--karta-muted); padding: 6px 0 2px; }
.notice { padding: 24px; text-align: center; color: var(--karta-muted); font-size: 14px; }
.notice strong { display: block; color: var(--karta-text); margin-bottom: 6px; font-size: 15px; }
`;
