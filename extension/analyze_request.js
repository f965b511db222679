/* Backstory panel: asking the server to analyze a page, its answer streamed or whole.
 * Plain script (no modules): loaded by panel.html before panel.js, it defines globals. */
"use strict";

const ANALYZE_PATH = "/api/v1/analyze";
const TIMEOUT_MS = 90000;
/* The server streams the sidebar as JSON lines, one per part as it is ready (facts, keyphrases,
 * entities, related, done); a server that does not stream answers the whole sidebar as JSON. */
const STREAM_TYPE = "application/x-ndjson";

class Unreachable extends Error {}

class ServerProblem extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** Ask the server to analyze ``body``; ``onPart(name, sidebar)`` is called with the sidebar so far
 * as each part arrives ("facts", "keyphrases", "entities", "related", "done"; "sidebar" for a
 * server that answered it whole). Resolves with the complete sidebar. */
async function postAnalyze(settings, body, onPart) {
  const endpoint = settings.server + ANALYZE_PATH;
  const headers = { "Content-Type": "application/json", Accept: STREAM_TYPE + ", application/json;q=0.9" };
  if (settings.token) headers.Authorization = "Bearer " + settings.token;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS); // the whole answer, streamed or not
  const late = () => new Unreachable(controller.signal.aborted
    ? "No answer from " + endpoint + " within " + TIMEOUT_MS / 1000 + " seconds."
    : "Tried " + endpoint + " and got no answer.");
  try {
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST", headers, body: JSON.stringify(body), signal: controller.signal,
        credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw late();
    }
    const type = response.headers.get("Content-Type") || "";
    if (response.ok && type.toLowerCase().startsWith(STREAM_TYPE) && response.body) {
      return await readStream(response, settings, onPart, late);
    }
    const payload = await wholeAnswer(response, settings);
    onPart("sidebar", payload);
    return payload;
  } finally {
    clearTimeout(timer);
  }
}

function unexpectedAnswer(status, settings) {
  return new ServerProblem(status, "Unexpected answer",
    "The server at " + settings.server + " did not answer like a Backstory server.");
}

/** The streamed sidebar: each line merged in as it comes (later fields win: done's story_id). */
async function readStream(response, settings, onPart, late) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const sidebar = {};
  let buffer = "";
  let finished = false;
  const take = (line) => {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      throw unexpectedAnswer(response.status, settings);
    }
    if (!event || typeof event !== "object" || typeof event.event !== "string") {
      throw unexpectedAnswer(response.status, settings);
    }
    const { event: name, ...part } = event;
    if (name === "error") {
      throw new ServerProblem(part.status || 500, part.title || "Error",
        part.detail || "The server stopped before the analysis was complete.");
    }
    if (!("story_id" in sidebar) && name !== "facts") throw unexpectedAnswer(response.status, settings);
    Object.assign(sidebar, part);
    if (name === "done") finished = true;
    onPart(name, sidebar);
  };
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw late();
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (line) take(line);
      }
    }
    buffer += decoder.decode();
    if (buffer.trim()) take(buffer.trim());
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
  if (!finished || !Array.isArray(sidebar.entities)) {
    throw new ServerProblem(response.status, "Incomplete answer",
      "The server's answer ended before the analysis was complete.");
  }
  return sidebar;
}

async function wholeAnswer(response, settings) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const problem = payload && typeof payload === "object" ? payload : {};
    throw new ServerProblem(response.status, problem.title || response.statusText || "Error",
      problem.detail || "The server answered " + response.status + " without an explanation.");
  }
  if (!payload || typeof payload !== "object" || !Array.isArray(payload.entities)) {
    throw unexpectedAnswer(response.status, settings);
  }
  return payload;
}
