/* Backstory background: the toolbar button (and Alt+Shift+B) opens the panel and asks it to read the tab.
 * Chrome runs this as a service worker (common.js comes in by importScripts); Firefox loads both
 * scripts into its background page. Nothing here touches the network. */
"use strict";

if (typeof importScripts === "function") importScripts("common.js");

/** Open Chrome's side panel or Firefox's sidebar. Must be called synchronously inside the click. */
function openPanel(tab) {
  if (ext.sidePanel && ext.sidePanel.open) return ext.sidePanel.open({ windowId: tab.windowId });
  if (ext.sidebarAction && ext.sidebarAction.open) return ext.sidebarAction.open();
  return Promise.reject(new Error("this browser has neither a side panel nor a sidebar"));
}

ext.action.onClicked.addListener((tab) => {
  const opened = openPanel(tab);
  // The click granted activeTab for this tab: the panel (already open or opening now) picks the request up
  // from storage.session and reads the page once, with that grant.
  const request = { tabId: tab.id, windowId: tab.windowId, at: Date.now() };
  Promise.resolve(opened).catch((err) => console.warn("Backstory: could not open the panel:", err));
  ext.storage.session.set({ [requestKey(tab.windowId)]: request }).catch((err) => {
    console.warn("Backstory: could not pass the request to the panel:", err);
  });
});
