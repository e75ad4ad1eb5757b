// METCON: a little progressive enhancement. Every page works without it.
// - #live[data-station]: follows the station's Server-Sent Events; shows the live weight
//   and whether it is stable; reloads when the batch changes or its armed step binds.
// - [data-poll]: re-fetches a fragment every data-interval ms (htmx-style), unless the user
//   is typing in it.
(function () {
  "use strict";
  function live(el) {
    var station = el.getAttribute("data-station");
    var batch = el.getAttribute("data-batch");
    var weight = document.getElementById("live-weight");
    var stable = document.getElementById("stable");
    var es = new EventSource("/api/stations/" + encodeURIComponent(station) + "/events");
    es.addEventListener("weight", function (m) {
      var e; try { e = JSON.parse(m.data); } catch (_) { return; }
      if (weight) { weight.textContent = e.net + " " + e.unit; }
      if (stable) {
        stable.textContent = e.stable ? "stable" : "settling";
        stable.className = "stable " + (e.stable ? "yes" : "no");
      }
    });
    function maybeReload(m) {
      var e; try { e = JSON.parse(m.data); } catch (_) { return; }
      if (e.batch_id === batch) { es.close(); window.location.reload(); }
    }
    es.addEventListener("batch", maybeReload);
    es.addEventListener("arm", function (m) {
      var e; try { e = JSON.parse(m.data); } catch (_) { return; }
      if (e.batch_id === batch && e.state !== "armed") { es.close(); window.location.reload(); }
    });
    es.addEventListener("resync", function () { es.close(); window.location.reload(); });
    // A reading may bind before this stream is open: while armed, look again now and then.
    if (document.getElementById("armed")) {
      setTimeout(function () { es.close(); window.location.reload(); }, 4000);
    }
  }
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-interval") || "5000", 10);
    setInterval(function () {
      var busy = Array.prototype.some.call(el.querySelectorAll("input:not([type=hidden]), textarea"), function (f) {
        return f.value !== "" || f === document.activeElement;
      });
      if (busy) { return; }
      fetch(url, { credentials: "same-origin", headers: { "accept": "text/html" } })
        .then(function (r) { if (r.status === 401) { window.location.href = "/login"; } return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; } })
        .catch(function () {});
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var l = document.getElementById("live"); if (l) { live(l); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
  });
})();
