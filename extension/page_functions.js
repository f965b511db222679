/* Backstory: functions the panel runs inside the reader's tab with scripting.executeScript.
 * Each one is serialised on its own, so it must not use anything outside its own body. */
"use strict";

/** Capture the rendered page: its address, its HTML as the browser has built it, and its content type.
 * Inline scripts and styles are dropped (they are most of a news page's weight and carry no text);
 * JSON-LD blocks stay because they hold the headline, author and date. */
function backstoryCapturePage() {
  const html = document.documentElement ? document.documentElement.outerHTML : "";
  const slim = html
    .replace(/<script\b(?![^>]*application\/ld\+json)[^>]*>[\s\S]*?<\/script>/gi, "")
    .replace(/<style\b[^>]*>[\s\S]*?<\/style>/gi, "");
  return {
    url: location.href,
    title: document.title,
    contentType: document.contentType,
    html: "<!DOCTYPE html>\n" + slim,
  };
}

/** Remove Backstory's highlights from the page, leaving its text exactly as it was. Returns how many. */
function backstoryClearHighlights() {
  const marks = Array.from(document.querySelectorAll("mark[data-backstory-hl]"));
  const parents = new Set();
  for (const mark of marks) {
    const parent = mark.parentNode;
    if (!parent) continue;
    parent.replaceChild(document.createTextNode(mark.textContent), mark);
    parents.add(parent);
  }
  for (const parent of parents) parent.normalize();
  return marks.length;
}

/** Highlight mentions on the page. Each item is {needle, left, right}: the mention as it appears in the
 * server's clean text plus a little text either side of it. The clean text and the page never match
 * character for character (the server drops menus, joins paragraphs...), so matching ignores whitespace
 * and uses the context to pick the right occurrence, walking forward through the page in reading order.
 * The panel clears earlier highlights first (backstoryClearHighlights). Returns {found, total, label}. */
function backstoryHighlight(items, label) {
  // 1. Index the page's visible text, whitespace removed: char i of `flat` is nodes[nodeOf[i]][offOf[i]].
  const IGNORED = "script,style,noscript,template,textarea,select,svg,math,iframe,object,canvas";
  const SPACE = /[\s\u00ad\u200b-\u200d\u2060\ufeff]/;
  const visible = new Map();
  const isVisible = (el) => {
    if (!visible.has(el)) {
      let ok = !el.closest(IGNORED);
      if (ok && typeof el.checkVisibility === "function") ok = el.checkVisibility();
      visible.set(el, ok);
    }
    return visible.get(el);
  };
  const nodes = [];
  const nodeOf = [];
  const offOf = [];
  let flat = "";
  const root = document.body || document.documentElement;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.data || !isVisible(el)) continue;
    const index = nodes.push(node) - 1;
    const data = node.data;
    let kept = "";
    for (let k = 0; k < data.length; k++) {
      const ch = data[k];
      if (SPACE.test(ch)) continue;
      kept += ch;
      nodeOf.push(index);
      offOf.push(k);
    }
    flat += kept;
  }
  const squash = (s) => String(s || "").replace(/[\s\u00ad\u200b-\u200d\u2060\ufeff]+/g, "");

  // 2. Find each mention, preferring the occurrence with matching context after the previous one.
  const spans = [];
  const taken = new Set();
  let cursor = 0;
  for (const item of items) {
    const needle = squash(item.needle);
    if (!needle) continue;
    const left = squash(item.left).slice(-24);
    const right = squash(item.right).slice(0, 24);
    const tries = [
      [left + needle + right, left.length],
      [left + needle, left.length],
      [needle + right, 0],
      [left.slice(-8) + needle + right.slice(0, 8), Math.min(8, left.length)],
      [needle, 0],
    ];
    let start = -1;
    for (const from of [cursor, 0]) {
      for (const [probe, lead] of tries) {
        let at = flat.indexOf(probe, from);
        while (at !== -1 && taken.has(at + lead)) at = flat.indexOf(probe, at + 1);
        if (at !== -1) {
          start = at + lead;
          break;
        }
      }
      if (start !== -1) break;
    }
    if (start === -1) continue;
    taken.add(start);
    spans.push([start, start + needle.length]);
    cursor = start + needle.length;
  }

  // 3. Turn each span into per-text-node ranges (a mention can cross <b>, <a> ...) and wrap them.
  const perNode = new Map();
  for (const [start, end] of spans) {
    let i = start;
    while (i < end) {
      const n = nodeOf[i];
      const from = offOf[i];
      let last = i;
      while (last + 1 < end && nodeOf[last + 1] === n) last++;
      if (!perNode.has(n)) perNode.set(n, []);
      perNode.get(n).push([from, offOf[last] + 1]);
      i = last + 1;
    }
  }
  const marks = [];
  for (const [n, ranges] of perNode) {
    const node = nodes[n];
    ranges.sort((a, b) => b[0] - a[0]);
    for (const [from, to] of ranges) {
      if (to > node.data.length) continue;
      const middle = node.splitText(from);
      middle.splitText(to - from);
      const mark = document.createElement("mark");
      mark.setAttribute("data-backstory-hl", label);
      mark.style.setProperty("background-color", "#ffe066", "important");
      mark.style.setProperty("color", "#1a1a1a", "important");
      mark.style.setProperty("box-shadow", "0 0 0 2px #f5b700", "important");
      mark.style.setProperty("border-radius", "2px", "important");
      middle.parentNode.replaceChild(mark, middle);
      mark.appendChild(middle);
      marks.push(mark);
    }
  }
  if (marks.length) {
    const ordered = marks.sort((a, b) =>
      a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
    const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    ordered[0].scrollIntoView({ block: "center", behavior: still ? "auto" : "smooth" });
  }
  return { found: spans.length, total: items.length, label };
}
