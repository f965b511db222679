/* Backstory options: server address, API token, archive on/off. */
"use strict";

const field = (id) => document.getElementById(id);

function say(message, kind = "ok") {
  const status = field("save-status");
  status.textContent = message;
  status.dataset.kind = kind;
}

async function fill() {
  const settings = await loadSettings();
  field("server").value = settings.server;
  field("token").value = settings.token;
  field("archive").checked = settings.archive;
}

/** Ask for access to a non-loopback server. Called first thing in the click handler: Firefox only shows
 * the prompt while the click is still being handled. Resolves to true when access is (already) granted. */
function requestAccess(server) {
  if (isLoopback(server)) return Promise.resolve(true);
  return ext.permissions.request({ origins: [originPattern(server)] }).catch(() => false);
}

async function save(event) {
  event.preventDefault();
  let server;
  try {
    server = normaliseServerUrl(field("server").value);
  } catch (err) {
    say(err.message, "error");
    field("server").focus();
    return;
  }
  const access = requestAccess(server);
  if (!isLoopback(server)) say("Waiting for you to allow Backstory to contact " + new URL(server).origin + " …");
  const token = field("token").value.trim();
  const archive = field("archive").checked;
  const granted = await access;
  await saveSettings({ server, token, archive });
  field("server").value = server;
  say(granted
    ? "Saved. Backstory will use " + server + "."
    : "Saved, but access to " + new URL(server).origin + " was not granted: Backstory can reach it only if " +
      "that server allows browser extensions (Backstory servers do).");
}

async function check() {
  let server;
  try {
    server = normaliseServerUrl(field("server").value);
  } catch (err) {
    say(err.message, "error");
    return;
  }
  say("Checking " + server + " …");
  try {
    const ready = await fetch(server + "/readyz", { cache: "no-store", credentials: "omit" });
    const body = await ready.json().catch(() => ({}));
    if (!ready.ok) {
      say("The server answered but is not ready yet (" + (body.status || ready.status) + "). Try again shortly.", "error");
      return;
    }
    const token = field("token").value.trim();
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const me = await fetch(server + "/api/v1/me", { headers, cache: "no-store", credentials: "omit" });
    if (me.status === 401) {
      say("The server is ready but wants a different API token.", "error");
      return;
    }
    const who = await me.json().catch(() => ({}));
    const api = await fetch(server + "/api/v1/stories?limit=1", { headers, cache: "no-store", credentials: "omit" });
    const list = await api.json().catch(() => ({}));
    // On a server without tokens everyone is "anyone": nothing to say about who.
    const signedIn = who.name && who.name !== "anyone" ? " You are " + who.name + " (" + who.scope + " access)." : "";
    say("The server is ready" + (typeof list.total === "number" ? "; its archive holds " + list.total + " stories." : ".") +
        signedIn);
  } catch {
    say("No answer from " + server + ". Is the server running, and is the address right?", "error");
  }
}

field("form").addEventListener("submit", (event) => {
  save(event).catch((err) => say("Could not save: " + err.message, "error"));
});
field("check").addEventListener("click", () => {
  check().catch((err) => say("Check failed: " + err.message, "error"));
});
// Saving is possible only once the stored values are in the form (else a quick save would store defaults).
field("save").disabled = true;
fill()
  .then(() => {
    field("save").disabled = false;
    document.body.dataset.loaded = "true";
  })
  .catch((err) => say("Could not load the settings: " + err.message, "error"));
