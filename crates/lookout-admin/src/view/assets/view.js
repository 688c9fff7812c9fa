// lookout's local view: redraws a page's live part (#live) when /view/events says that what the
// page shows changed. Without this script every page still works as plain HTML.
(function () {
  "use strict";
  var wants = (document.body.getAttribute("data-live") || "").split(/\s+/).filter(Boolean);
  var status = document.getElementById("live-status");
  function say(text) { if (status) status.textContent = text; }
  var busy = false, again = false;

  function redraw() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var live = document.getElementById("live");
        if (!next || !live) return;
        // Keep open spans open.
        var open = Array.prototype.map.call(live.querySelectorAll("details[open]"), function (d) { return d.id; });
        live.replaceWith(next);
        open.forEach(function (id) { var d = id && document.getElementById(id); if (d) d.open = true; });
        bindActions(next);
        say("live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { say("live · update failed"); })
      .then(function () { busy = false; if (again) { again = false; redraw(); } });
  }

  // The jobs' buttons post without leaving the page; the events redraw it.
  function bindActions(root) {
    Array.prototype.forEach.call(root.querySelectorAll(".actions form"), function (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        fetch(form.action, { method: "POST", credentials: "same-origin", redirect: "manual" })
          .then(function (r) {
            if (r.status >= 400) return r.text().then(function (t) { say(t); });
            redraw();
          })
          .catch(function () { say("the action failed"); });
      });
    });
  }
  bindActions(document);

  if (!wants.length || !window.EventSource) return;
  var events = new EventSource("/view/events");
  // A page left open in the back-forward cache would keep its stream, and a browser allows few
  // connections per host: close it on leaving, start afresh on coming back.
  window.addEventListener("pagehide", function () { events.close(); });
  window.addEventListener("pageshow", function (e) { if (e.persisted) location.reload(); });
  events.addEventListener("open", function () { say("live"); });
  events.addEventListener("error", function () { say("live · reconnecting"); });
  events.addEventListener("change", function (e) {
    var changed = [];
    try { changed = JSON.parse(e.data).changed || []; } catch (_) { return; }
    if (changed.some(function (k) { return wants.indexOf(k) >= 0; })) redraw();
  });
})();
