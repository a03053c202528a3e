// micwatch live refresh: polls /api/summary every 5 s and, when the store changed, replaces
// the page's <main> with a fresh copy of the same page (rendered and escaped by the server).
// It never refreshes while the user is typing in a form. No inline script: the CSP forbids it.
(function () {
  "use strict";
  var summary = document.body.getAttribute("data-summary");
  if (!summary) { return; }
  var stamp = null;
  function busy() {
    var active = document.activeElement;
    return active && active.closest && active.closest("main form") !== null;
  }
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) { main.replaceWith(fresh); }
      });
  }
  function poll() {
    fetch(summary, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        if (stamp !== null && data.stamp !== stamp && !busy()) { refresh(); }
        stamp = data.stamp;
      })
      .catch(function () { /* the box may be restarting: try again at the next tick */ });
  }
  poll();
  window.setInterval(poll, 5000);
})();
