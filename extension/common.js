/* Backstory: settings and small helpers shared by the background worker, the panel and the options page.
 * Plain script (no modules, no bundler): it defines globals on `self`. */
"use strict";

/** The WebExtension API: Firefox's promise-based `browser`, or Chrome's `chrome` (promises in MV3). */
const ext = globalThis.browser ?? globalThis.chrome;

const DEFAULT_SERVER = "http://127.0.0.1:8000";

/** Settings live in storage.sync (server, archive) and storage.local (the token stays on this device). */
const DEFAULT_SETTINGS = Object.freeze({ server: DEFAULT_SERVER, token: "", archive: true });

/** Normalise a server address: http(s) only, no credentials, no query/fragment, no trailing slash.
 * Returns the cleaned URL string, or throws an Error whose message explains what is wrong. */
function normaliseServerUrl(value) {
  const raw = String(value ?? "").trim();
  if (!raw) throw new Error("Enter the address of your Backstory server, e.g. " + DEFAULT_SERVER);
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : "http://" + raw);
  } catch {
    throw new Error("That is not a web address: " + raw);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("The server address must start with http:// or https://");
  }
  if (url.username || url.password) throw new Error("Put the token in the API token field, not in the address.");
  url.search = "";
  url.hash = "";
  return url.href.replace(/\/+$/, "");
}

/** The host-permission pattern that covers a server address, e.g. "https://news.example.org/*". */
function originPattern(serverUrl) {
  const url = new URL(serverUrl);
  return url.protocol + "//" + url.hostname + "/*";
}

/** True for loopback servers, which the manifest's host_permissions already cover (any port). */
function isLoopback(serverUrl) {
  const host = new URL(serverUrl).hostname;
  return host === "127.0.0.1" || host === "localhost";
}

async function loadSettings() {
  const [synced, local] = await Promise.all([
    ext.storage.sync.get({ server: DEFAULT_SETTINGS.server, archive: DEFAULT_SETTINGS.archive }),
    ext.storage.local.get({ token: DEFAULT_SETTINGS.token }),
  ]);
  return { server: synced.server || DEFAULT_SERVER, archive: synced.archive !== false, token: local.token || "" };
}

async function saveSettings({ server, token, archive }) {
  await Promise.all([
    ext.storage.sync.set({ server, archive: Boolean(archive) }),
    ext.storage.local.set({ token: token || "" }),
  ]);
}

/** The key under which the background worker leaves "analyze this tab" requests for a window's panel. */
function requestKey(windowId) {
  return "request:" + windowId;
}
