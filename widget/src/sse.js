// Server-sent events from a fetch() response body: the frames Karta writes (`id:`, `event:`,
// `data:`, comments as keep-alives), decoded as they arrive. EventSource cannot send an
// Authorization header, so the widget reads streams this way.

/**
 * Yields {id, event, data} for each complete frame of `body` (a ReadableStream of bytes).
 * A frame cut off by a dropped connection is never yielded.
 */
export async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { id: null, event: null, data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (frame.data.length) yield { id: frame.id, event: frame.event, data: frame.data.join("\n") };
          frame = { id: null, event: null, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (name === "data") frame.data.push(value);
        else if (name === "id") frame.id = value;
        else if (name === "event") frame.event = value;
      }
    }
  } finally {
    reader.releaseLock?.();
  }
}
