/* Backstory panel: reads the tab it was asked to read, sends it to the configured server, shows the result.
 * Runs in Chrome's side panel and in Firefox's sidebar. Nothing is sent anywhere but the configured
 * server, and only after the reader clicked the toolbar button (or "Analyze this tab"). */
"use strict";

const $ = (id) => document.getElementById(id);
const STALL_MS = 5000; // no line for this long: the panel says the server is slow
const GROUPS = [
  ["people", "People", ["PERSON"]],
  ["organisations", "Organisations", ["ORG"]],
  ["places", "Places", ["GPE", "LOC", "FAC"]],
  ["other", "Other", null],
];

const state = {
  windowId: null,
  tabId: null,
  lastRequestAt: 0,
  run: 0,
  result: null,
  activeChip: null,
};

/* ---------- small DOM helpers (all server data goes in as text, never as HTML) ---------- */

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function formatDate(iso) {
  if (!iso) return "";
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso);
  if (!match) return iso;
  const date = new Date(Date.UTC(+match[1], +match[2] - 1, +match[3]));
  return new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" })
    .format(date);
}

function joinParts(parts) {
  return parts.filter((p) => p && String(p).trim()).join(" · ");
}

/* ---------- states ---------- */

/** Show a message state: idle, loading, unreachable, not-article, cannot-read, error. */
function showStatus(name, { title, detail = "", hint = "", actions = false, loading = false }) {
  document.body.dataset.state = name;
  $("main").setAttribute("aria-busy", loading ? "true" : "false");
  $("status").hidden = false;
  $("status-title").textContent = title;
  $("status-detail").textContent = detail;
  $("status-hint").textContent = hint;
  $("status-actions").hidden = !actions;
  $("skeleton").hidden = !loading;
  $("progress").hidden = true;
  $("result").hidden = document.body.dataset.partial !== "true" || loading;
  document.body.dataset.partial = "false";
}

function showLoading(title, detail) {
  showStatus("loading", { title, detail, loading: true });
}

/* ---------- reading the tab ---------- */

class CannotRead extends Error {}

async function captureTab(tabId) {
  let results;
  try {
    results = await ext.scripting.executeScript({ target: { tabId }, func: backstoryCapturePage });
  } catch (err) {
    const reason = String(err && err.message ? err.message : err);
    if (/permission/i.test(reason)) {
      throw new CannotRead("The browser lets Backstory read a tab only after you click the Backstory button " +
        "(or press Alt+Shift+B) on that tab.");
    }
    throw new CannotRead("The browser does not let extensions read this page (" + reason + "). " +
      "Browser pages, extension stores and built-in PDF viewers are off limits.");
  }
  const page = results && results[0] && results[0].result;
  if (!page) throw new CannotRead("The page did not answer; it may still be loading. Try again in a moment.");
  if (!/^https?:/i.test(page.url)) {
    throw new CannotRead("Only web pages (http or https) can be analyzed; this is " + page.url.split(":")[0] + ":.");
  }
  if (!/html|xml/i.test(page.contentType || "text/html")) {
    const kind = /pdf/i.test(page.contentType) ? "a PDF" : "a " + page.contentType + " document";
    throw new CannotRead("This is " + kind + ", not a web page with a story.");
  }
  return page;
}

/* ---------- the whole analysis ---------- */

async function analyze(tabId) {
  const run = ++state.run;
  if (state.activeChip && state.tabId != null) runInTab(backstoryClearHighlights, []).catch(() => {});
  state.tabId = tabId;
  state.result = null;
  state.activeChip = null;
  const settings = await loadSettings();
  const current = () => run === state.run;
  showLoading("Reading this page…", "Taking the page as your browser shows it.");
  let page;
  try {
    page = await captureTab(tabId);
  } catch (err) {
    if (!current()) return;
    if (err instanceof CannotRead) {
      showStatus("cannot-read", {
        title: "Backstory can't read this page",
        detail: err.message,
        hint: "Open a news story and click the Backstory button again.",
      });
      return;
    }
    throw err;
  }
  if (!current()) return;
  showLoading("Analyzing the story…",
    "Sending it to your Backstory server at " + settings.server + " (and nowhere else).");
  const stall = new StallWatch(STALL_MS);
  try {
    await postAnalyze(settings, { url: page.url, html: page.html, archive: settings.archive }, (name, sidebar) => {
      if (!current()) return; // the reader moved on: this answer is not theirs any more
      state.result = sidebar;
      renderPart(name, sidebar, settings);
      stall.restart(name === "done" || name === "sidebar" ? null : showStalled);
    });
  } catch (err) {
    if (!current()) return;
    showFailure(err, settings);
  } finally {
    stall.restart(null);
  }
}

/** Calls a function once no part has arrived for ``ms`` (restarted on each part). */
class StallWatch {
  constructor(ms) {
    this.ms = ms;
    this.timer = null;
  }

  restart(onStall) {
    clearTimeout(this.timer);
    this.timer = onStall ? setTimeout(onStall, this.ms) : null;
  }
}

function showFailure(err, settings) {
  // A failure after the facts arrived keeps them on screen, under the message.
  const partial = document.body.dataset.state === "partial";
  document.body.dataset.partial = partial ? "true" : "false";
  if (partial) for (const placeholder of document.querySelectorAll("#result .sk")) placeholder.remove();
  if (err instanceof Unreachable) {
    const loopback = isLoopback(settings.server);
    showStatus("unreachable", {
      title: "Can't reach your Backstory server",
      detail: err.message,
      hint: loopback
        ? "Is it running? Start it with “backstory serve” (see the README), or set the right address in Options."
        : "Is the server up and reachable from this computer? Check the address in Options, and that " +
          "Backstory was allowed to contact it when you saved it.",
      actions: true,
    });
  } else if (err instanceof ServerProblem && err.status === 422 && /no article/i.test(err.title)) {
    showStatus("not-article", {
      title: "This doesn't look like an article",
      detail: err.detail,
      hint: "Backstory works on news stories and blog posts. Open one and click the button again.",
    });
  } else if (err instanceof ServerProblem && err.status === 401) {
    showStatus("error", {
      title: "The server needs your API token (401 " + err.title + ")",
      detail: err.detail,
      hint: "Set the server's API token in Options (the server's admin gives each member one).",
      actions: true,
    });
  } else if (err instanceof ServerProblem && err.status === 403 && /scope/.test(err.detail || "")) {
    showStatus("error", {
      title: "Your token may not keep stories (403 " + err.title + ")",
      detail: err.detail,
      hint: "Switch off \u201cKeep stories I read in the archive\u201d in Options, or ask the server's admin for a token with write access.",
      actions: true,
    });
  } else if (err instanceof ServerProblem) {
    showStatus("error", {
      title: "The server could not analyze this page (" + err.status + " " + err.title + ")",
      detail: err.detail,
      hint: "",
      actions: true,
    });
  } else {
    showStatus("error", {
      title: "Something went wrong in the panel",
      detail: String(err && err.message ? err.message : err),
      actions: true,
    });
  }
}

/* ---------- rendering a result ---------- */

function chip(label, count, onClick, extraClass) {
  const button = el("button", { type: "button", className: "chip " + (extraClass || ""), "aria-pressed": "false" }, [
    el("span", { className: "chip-label", text: label }),
    count ? el("span", { className: "count", text: String(count), "aria-label": count + " mentions" }) : null,
  ]);
  button.addEventListener("click", () => onClick(button));
  return el("li", {}, [button]);
}

/** Render one part of the sidebar as it arrives: the facts first (with placeholders where the
 * other parts will go, so nothing jumps), then each part into its place, then the footer. */
function renderPart(name, result, settings) {
  if (name === "sidebar") renderResult(result, settings);
  else if (name === "facts") renderFacts(result);
  else if (name === "keyphrases") renderKeyphrases(result);
  else if (name === "entities") renderEntities(result);
  else if (name === "related") renderRelated(result.related || [], settings);
  else if (name === "done") renderDone(result, settings);
  // (a part this panel does not know yet is kept in the sidebar and not shown)
}

/** The whole sidebar at once (a server that does not stream). */
function renderResult(result, settings) {
  renderFacts(result);
  renderKeyphrases(result);
  renderEntities(result);
  renderRelated(result.related || [], settings);
  renderDone(result, settings);
}

function placeholders(count, className) {
  return Array.from({ length: count }, () => el("li", { className: "sk " + className, "aria-hidden": "true" }));
}

function renderFacts(result) {
  document.body.dataset.state = "partial";
  document.body.dataset.stalled = "false";
  $("main").setAttribute("aria-busy", "true");
  $("status").hidden = true;
  $("skeleton").hidden = true;
  $("highlight-status").textContent = "";

  $("title").textContent = result.title || result.canonical_url || result.url;
  $("site-byline").textContent = joinParts([result.site_name || hostOf(result.url), result.byline]);
  const minutes = result.reading_minutes ? result.reading_minutes + " min read" : "";
  $("date-time").textContent = joinParts([formatDate(result.published), minutes]);

  $("keyphrases").replaceChildren(...placeholders(6, "sk-chip"));
  $("entities").replaceChildren(el("ul", { className: "chips pending" }, placeholders(8, "sk-chip")));
  $("same-event-section").hidden = true;
  $("backstory-section").hidden = true;
  $("related-pending").replaceChildren(...placeholders(3, "sk-related"));
  $("related-pending").hidden = false;
  $("related-empty").hidden = true;
  $("foot").textContent = result.word_count ? result.word_count + " words" : "";
  $("progress").textContent = "Still working: finding names, keyphrases and related stories…";
  $("progress").hidden = false;
  $("result").hidden = false;
}

function showStalled() {
  if (document.body.dataset.state !== "partial") return;
  document.body.dataset.stalled = "true";
  $("progress").textContent = "Still working — the server is taking longer than usual. What has arrived is shown; " +
    "the rest follows when it is ready.";
}

function renderKeyphrases(result) {
  const keyphrases = $("keyphrases");
  keyphrases.replaceChildren();
  for (const kp of result.keyphrases || []) {
    keyphrases.append(chip(kp.phrase, 0, (button) => toggleHighlight(button, kp.phrase, keyphraseItems(kp)),
      "keyphrase"));
  }
  if (!keyphrases.children.length) keyphrases.append(el("li", { className: "empty", text: "No keyphrases found." }));
}

function renderEntities(result) {
  const entities = $("entities");
  entities.replaceChildren();
  const known = new Set(GROUPS.flatMap(([, , labels]) => labels || []));
  for (const [key, heading, labels] of GROUPS) {
    const members = (result.entities || [])
      .filter((e) => (labels ? labels.includes(e.label) : !known.has(e.label)))
      .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
    if (!members.length) continue;
    const list = el("ul", { className: "chips" });
    for (const entity of members) {
      list.append(chip(entity.name, entity.count,
        (button) => toggleHighlight(button, entity.name, mentionItems(entity.mentions)), "entity"));
    }
    entities.append(el("section", { className: "group", dataset: { group: key } }, [
      el("h3", { text: heading + " (" + members.length + ")" }), list]));
  }
  if (!entities.children.length) {
    entities.append(el("p", { className: "empty", text: "No people, organisations or places found." }));
  }
}


/** The last part: the footer, and the panel is done working. */
function renderDone(result, settings) {
  document.body.dataset.state = "result";
  document.body.dataset.stalled = "false";
  $("main").setAttribute("aria-busy", "false");
  $("progress").hidden = true;
  const kept = result.archived ? "Kept in your archive" : settings.archive ? "Not kept" : "Not kept (archiving is off)";
  const took = result.timings_ms && result.timings_ms.total ? "analyzed in " + Math.round(result.timings_ms.total) + " ms" : "";
  $("foot").textContent = joinParts([kept, took, result.word_count ? result.word_count + " words" : ""]);
  $("result").hidden = false;
}

function hostOf(url) {
  try {
    return new URL(url).hostname.replace(/^www\./, "");
  } catch {
    return "";
  }
}

function safeHttpUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/* ---------- highlighting mentions on the page ---------- */

/** Map Python code-point offsets (the server's) to JavaScript UTF-16 offsets in the same text. */
function codePointToUtf16(text) {
  if (!/[\ud800-\udbff]/.test(text)) return (i) => i;
  const table = [];
  let unit = 0;
  for (const ch of text) {
    table.push(unit);
    unit += ch.length;
  }
  table.push(unit);
  return (i) => table[Math.min(i, table.length - 1)];
}

function contextItem(text, start, end) {
  return { needle: text.slice(start, end), left: text.slice(Math.max(0, start - 40), start), right: text.slice(end, end + 40) };
}

function mentionItems(mentions) {
  const text = state.result.text || "";
  const toUnits = codePointToUtf16(text);
  return (mentions || [])
    .map((m) => [toUnits(m.start), toUnits(m.end)])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0])
    .map(([s, e]) => contextItem(text, s, e));
}

/** A keyphrase's occurrences: the server's offsets; a server older than those gives none, and
 * then the phrase is looked for word for word in the text. */
function keyphraseItems(kp) {
  return kp.mentions && kp.mentions.length ? mentionItems(kp.mentions) : phraseItems(kp.phrase);
}

function phraseItems(phrase) {
  const text = state.result.text || "";
  const words = phrase.trim().split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length || !words[0]) return [];
  const pattern = new RegExp("(?<![\\p{L}\\p{N}])" + words.join("\\s+") + "(?![\\p{L}\\p{N}])", "giu");
  const items = [];
  for (const match of text.matchAll(pattern)) {
    items.push(contextItem(text, match.index, match.index + match[0].length));
  }
  return items;
}

async function runInTab(func, args) {
  const results = await ext.scripting.executeScript({ target: { tabId: state.tabId }, func, args });
  return results && results[0] ? results[0].result : undefined;
}

async function toggleHighlight(button, label, items) {
  const status = $("highlight-status");
  const wasActive = state.activeChip === button;
  for (const other of document.querySelectorAll(".chip[aria-pressed='true']")) other.setAttribute("aria-pressed", "false");
  state.activeChip = null;
  try {
    await runInTab(backstoryClearHighlights, []);
    if (wasActive) {
      status.textContent = "Highlights cleared.";
      return;
    }
    if (!items.length) {
      status.textContent = "“" + label + "” does not appear word for word in the story.";
      return;
    }
    const outcome = await runInTab(backstoryHighlight, [items, label]);
    const found = outcome ? outcome.found : 0;
    if (!found) {
      status.textContent = "Couldn't find “" + label + "” on the page; it may have changed since it was read.";
      return;
    }
    state.activeChip = button;
    button.setAttribute("aria-pressed", "true");
    status.textContent = "Highlighted " + found + (found === 1 ? " mention" : " mentions") + " of “" + label +
      "” on the page" + (found < items.length ? " (" + items.length + " in the story)" : "") +
      ". Click again to clear.";
  } catch (err) {
    status.textContent = "Can't highlight on this tab any more (" + (err && err.message ? err.message : err) +
      "). Click the Backstory button on it again.";
  }
}

/* ---------- wiring ---------- */

async function activeTabId() {
  const query = state.windowId == null ? { active: true, currentWindow: true } : { active: true, windowId: state.windowId };
  const [tab] = await ext.tabs.query(query);
  return tab ? tab.id : null;
}

async function analyzeActiveTab() {
  const tabId = await activeTabId();
  if (tabId == null) {
    showStatus("cannot-read", { title: "No tab to read", detail: "Select a tab with a news story first." });
    return;
  }
  await analyze(tabId);
}

function handleRequest(request) {
  if (!request || request.windowId !== state.windowId || request.at <= state.lastRequestAt) return;
  state.lastRequestAt = request.at;
  analyze(request.tabId).catch((err) => showFailure(err, { server: "" }));
}

async function init() {
  $("analyze").addEventListener("click", () => analyzeActiveTab().catch((err) => showFailure(err, { server: "" })));
  const openOptions = () => ext.runtime.openOptionsPage();
  $("open-options").addEventListener("click", openOptions);
  $("status-options").addEventListener("click", openOptions);
  $("retry").addEventListener("click", () => {
    if (state.tabId != null) analyze(state.tabId).catch((err) => showFailure(err, { server: "" }));
    else analyzeActiveTab().catch((err) => showFailure(err, { server: "" }));
  });

  const win = await ext.windows.getCurrent();
  state.windowId = win.id;
  const key = requestKey(state.windowId);
  ext.storage.onChanged.addListener((changes, area) => {
    if (area === "session" && changes[key]) handleRequest(changes[key].newValue);
  });
  const stored = await ext.storage.session.get(key);
  const request = stored[key];
  // A click from the last few seconds opened this panel: read that tab now.
  if (request && Date.now() - request.at < 15000) handleRequest(request);
}

init().catch((err) => showFailure(err, { server: "" }));
