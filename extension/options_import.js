/* Backstory options: "Import your reading history". The export file itself is sent to the server
 * (POST /api/v1/imports, with the file's own type), which imports it in the background; its progress
 * is then read from GET /api/v1/imports/{id} until it is over. Uses field() and requestAccess() of options.js. */
"use strict";

const IMPORTS_PATH = "/api/v1/imports";
const IMPORT_POLL_MS = 1000;
const IMPORT_GIVE_UP = 60; // polls without an answer before the page stops asking
// The type each kind of export is sent as; the server tells the format from the content.
const IMPORT_TYPES = Object.freeze({
  zip: "application/zip", csv: "text/csv", json: "application/json", jsonl: "application/jsonl",
  ndjson: "application/x-ndjson", html: "text/html", htm: "text/html", opml: "text/x-opml", xml: "text/xml",
});

function importType(file) {
  const suffix = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return IMPORT_TYPES[suffix] || "application/octet-stream";
}

function tell(message, kind = "ok") {
  const status = field("import-status");
  status.textContent = message;
  status.dataset.kind = kind;
}

/** What a refusal means for the reader, and what to do about it. */
function refusal(status, problem) {
  const detail = problem.detail || problem.title || "";
  if (status === 401) return "The server needs your API token, or a different one: enter it above (401).";
  if (status === 403 && /admin/.test(detail)) {
    return "A list of feeds (OPML) can only be imported with an admin token (403).";
  }
  if (status === 403 && /scope/.test(detail)) {
    return "Your token may not add stories to the archive: it needs write access (403).";
  }
  if (status === 403) return "The server refused this request (403): " + detail;
  if (status === 413) {
    return "The file is too large for this server (413): " + detail + ". Its admin can raise BACKSTORY_MAX_IMPORT_BYTES.";
  }
  if (status === 415 || status === 422) {
    return "The server cannot read this file as an export (" + status + "): " + detail;
  }
  return "The server answered " + status + (detail ? ": " + detail : ".");
}

function counts(report) {
  return report.imported + " imported, " + report.skipped + " skipped, " + report.failed + " failed";
}

/** Show an import's report: the counts, how far it has read, its failures and the feeds it found. */
function show(report) {
  const bar = field("import-progress");
  bar.hidden = report.status !== "running";
  bar.value = report.size ? Math.min(report.read_bytes / report.size, 1) : 0;
  const feeds = report.feeds_found ? "; " + report.feeds_found + " feeds found" : "";
  if (report.status === "running") {
    tell("Importing (" + report.format + "): " + counts(report) + feeds + " …");
  } else if (report.status === "done") {
    tell("Import done (" + report.format + "): " + counts(report) + feeds + "." +
      (report.imported ? " The server analyses the new stories in the background." : ""));
  } else {
    tell("Import " + report.status + " (" + report.format + "): " + counts(report) + ". " + (report.error || ""),
      "error");
  }
  const list = field("import-failures");
  list.replaceChildren(...report.failures.map((failure) => {
    const item = document.createElement("li");
    item.textContent = failure.where + ": " + failure.reason + (failure.url ? " (" + failure.url + ")" : "");
    return item;
  }));
  const unlisted = report.failed - report.failures.length;
  field("import-more").textContent = unlisted > 0 ? "… and " + unlisted + " more failures." : "";
}

async function answerOf(response) {
  return response.json().catch(() => ({}));
}

async function sendImport() {
  const file = field("import-file").files[0];
  let server;
  try {
    server = normaliseServerUrl(field("server").value);
  } catch (err) {
    tell(err.message, "error");
    return;
  }
  const access = requestAccess(server); // first, while the click is being handled (Firefox's prompt)
  if (!file) {
    tell("Choose an export file first.", "error");
    return;
  }
  if (!(await access)) {
    tell("Backstory may not contact " + new URL(server).origin + ": allow it to, then send the file again.", "error");
    return;
  }
  const token = field("token").value.trim();
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  field("import-failures").replaceChildren();
  field("import-more").textContent = "";
  tell("Sending " + file.name + " (" + Math.ceil(file.size / 1024) + " KB) to " + server + " …");
  let response;
  try {
    response = await fetch(server + IMPORTS_PATH, {
      method: "POST", headers: { ...headers, "Content-Type": importType(file) }, body: file,
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    });
  } catch {
    tell("No answer from " + server + ". Is the server running, and is the address right?", "error");
    return;
  }
  let report = await answerOf(response);
  if (response.status !== 202) {
    tell(refusal(response.status, report), "error");
    return;
  }
  show(report);
  const location = server + IMPORTS_PATH + "/" + encodeURIComponent(report.import_id);
  let misses = 0;
  while (report.status === "running") {
    await new Promise((resolve) => setTimeout(resolve, IMPORT_POLL_MS));
    try {
      response = await fetch(location, { headers, credentials: "omit", cache: "no-store" });
      misses = 0;
    } catch {
      // The server may be restarting: the import's report is kept in its archive.
      if (++misses >= IMPORT_GIVE_UP) {
        tell("Lost contact with " + server + ". Send the file again once it is back: what was stored is skipped.",
          "error");
        return;
      }
      continue;
    }
    if (!response.ok) {
      tell(refusal(response.status, await answerOf(response)), "error");
      return;
    }
    report = await answerOf(response);
    show(report);
  }
}

field("import-send").addEventListener("click", () => {
  const send = field("import-send");
  send.disabled = true;
  sendImport()
    .catch((err) => tell("Import failed: " + err.message, "error"))
    .finally(() => {
      send.disabled = false;
    });
});
