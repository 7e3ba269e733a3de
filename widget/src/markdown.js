// Markdown to DOM nodes, safely: model output is text, always. Every node is made with
// createElement and every piece of text with createTextNode, so nothing the model writes
// (`<script>`, `onerror=`, `javascript:` links) is ever parsed as markup. Links are kept only
// for http(s) URLs and open in a new tab with rel="noopener noreferrer nofollow".
//
// The subset a chat needs: paragraphs (single newlines are line breaks), headings, bullet and
// numbered lists, block quotes, fenced code, rules; inline code, bold, italic, strikethrough,
// links and bare URLs. An unfinished code fence (a reply still streaming) runs to the end.

const INLINE = [
  { name: "code", re: /`([^`\n]+)`/ },
  { name: "link", re: /\[([^\]\n]+)\]\(([^)\s]+)\)/ },
  // Underscores emphasize only between word boundaries: `snake_case_names` stay as they are.
  { name: "strong", re: /\*\*([^*\n]+)\*\*|(?<!\w)__([^_\n]+)__(?!\w)/ },
  { name: "del", re: /~~([^~\n]+)~~/ },
  { name: "em", re: /\*([^*\n]+)\*|(?<!\w)_([^_\n]+)_(?!\w)/ },
  { name: "url", re: /https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/ },
];

export function safeUrl(href) {
  try {
    const url = new URL(href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function link(doc, href, label) {
  const url = safeUrl(href);
  if (!url) return doc.createTextNode(label === href ? href : `${label} (${href})`);
  const a = doc.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  a.textContent = label;
  return a;
}

/** Inline markdown of one line of text, appended to `parent`. */
function inline(doc, parent, text) {
  while (text) {
    let best = null;
    for (const rule of INLINE) {
      const match = rule.re.exec(text);
      if (match && (best === null || match.index < best.match.index)) best = { rule, match };
    }
    if (!best) {
      parent.append(doc.createTextNode(text));
      return;
    }
    const { rule, match } = best;
    if (match.index > 0) parent.append(doc.createTextNode(text.slice(0, match.index)));
    const inner = match[1] ?? match[2] ?? "";
    if (rule.name === "code") {
      const code = doc.createElement("code");
      code.textContent = inner;
      parent.append(code);
    } else if (rule.name === "link") {
      parent.append(link(doc, match[2], match[1]));
    } else if (rule.name === "url") {
      parent.append(link(doc, match[0], match[0]));
    } else {
      const el = doc.createElement(rule.name);
      inline(doc, el, inner);
      parent.append(el);
    }
    text = text.slice(match.index + match[0].length);
  }
}

function paragraph(doc, lines) {
  const p = doc.createElement("p");
  lines.forEach((line, i) => {
    if (i) p.append(doc.createElement("br"));
    inline(doc, p, line);
  });
  return p;
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;

/** `text` as a DocumentFragment of safe nodes. */
export function renderMarkdown(text, doc = document) {
  const out = doc.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let buffer = [];
  const flush = () => {
    if (buffer.length) out.append(paragraph(doc, buffer));
    buffer = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !new RegExp(`^\\s*${fence[1]}\\s*$`).test(lines[i])) body.push(lines[i++]);
      i++;
      const pre = doc.createElement("pre");
      const code = doc.createElement("code");
      if (fence[2]) code.dataset.language = fence[2];
      code.textContent = body.join("\n");
      pre.append(code);
      out.append(pre);
      continue;
    }
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      const h = doc.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
      inline(doc, h, heading[2]);
      out.append(h);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      flush();
      out.append(doc.createElement("hr"));
      i++;
      continue;
    }
    if (line.startsWith(">")) {
      flush();
      const quoted = [];
      while (i < lines.length && lines[i].startsWith(">")) quoted.push(lines[i++].replace(/^>\s?/, ""));
      const quote = doc.createElement("blockquote");
      quote.append(renderMarkdown(quoted.join("\n"), doc));
      out.append(quote);
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = NUMBERED.exec(line);
    if (bullet || numbered) {
      flush();
      const pattern = bullet ? BULLET : NUMBERED;
      const list = doc.createElement(bullet ? "ul" : "ol");
      if (numbered && numbered[1] !== "1") list.start = Number(numbered[1]);
      while (i < lines.length && pattern.exec(lines[i])) {
        const item = doc.createElement("li");
        const match = pattern.exec(lines[i++]);
        inline(doc, item, bullet ? match[1] : match[2]);
        list.append(item);
      }
      out.append(list);
      continue;
    }
    buffer.push(line);
    i++;
  }
  flush();
  return out;
}
