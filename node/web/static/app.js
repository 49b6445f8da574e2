// lienthong web pages: live parts by short polling, and the "test the connection" buttons.
// Loaded as a file (the Content-Security-Policy allows no inline script); every value from
// the node is put in with textContent, never as HTML.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function setText(key, text) {
    const el = document.querySelector('[data-live="' + CSS.escape(key) + '"]');
    if (el && el.tagName !== "UL") { el.textContent = text; }
  }

  function showTransfers(list, items) {
    list.replaceChildren();
    if (items.length === 0) {
      const li = document.createElement("li");
      li.textContent = list.dataset.empty || "";
      list.appendChild(li);
      return;
    }
    for (const item of items) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = item.label;
      const bar = document.createElement("progress");
      bar.max = item.size || 1;
      bar.value = item.done || 0;
      bar.setAttribute("aria-label", item.label);
      li.append(label, bar);
      list.appendChild(li);
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/live.json", {credentials: "same-origin", cache: "no-store"});
      if (!response.ok) { return; }
      const live = await response.json();
      setText("health", live.health);
      for (const peer of live.peers) {
        setText("link-" + peer.name, peer.link);
        setText("queue-" + peer.name, String(peer.waiting));
      }
      const list = document.querySelector('[data-live-list="transfers"]');
      if (list) { showTransfers(list, live.transfers); }
    } catch (error) {
      // the node may be restarting: the next poll tries again
    }
  }

  if (document.querySelector("[data-live], [data-live-list]")) {
    window.setInterval(refresh, 2000);
  }

  for (const button of document.querySelectorAll("button.test-connection")) {
    button.addEventListener("click", async function () {
      const result = document.getElementById(button.getAttribute("aria-describedby"));
      button.disabled = true;
      try {
        const response = await fetch("/peers/" + encodeURIComponent(button.dataset.peer) + "/test",
          {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrf}});
        const answer = await response.json();
        result.textContent = answer.message;
      } catch (error) {
        result.textContent = button.dataset.failed || String(error);
      } finally {
        button.disabled = false;
      }
    });
  }
})();
