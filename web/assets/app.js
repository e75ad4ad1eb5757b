// METCON: a little progressive enhancement. Every page works without it.
// - #live[data-station]: follows the station's Server-Sent Events; shows the live weight
//   and whether it is stable; reloads when the batch changes or its armed step binds.
// - [data-poll]: re-fetches a fragment every data-interval ms (htmx-style), unless the user
//   is typing in it; marked as background, so an unattended screen still times out (401:
//   to the login form).
// - [data-region-editor]: drag a rectangle on a device's frame (pointer events: mouse, touch,
//   pen); it fills the x, y, width, height inputs in the frame's pixels, and typing in them
//   moves the rectangle. The form posts the numbers either way.
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
      // The header says this is not the user's doing: it does not keep the session alive.
      fetch(url, { credentials: "same-origin", headers: { "accept": "text/html", "x-metcon-background": "1" } })
        .then(function (r) {
          if (r.status === 401) {
            window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
            return null;
          }
          return r.ok ? r.text() : null;
        })
        .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; } })
        .catch(function () {});
    }, every);
  }
  function regionEditor(el) {
    var svg = el.querySelector("svg");
    var rect = svg && svg.querySelector("rect");
    if (!rect || !svg.viewBox || !svg.viewBox.baseVal) { return; }
    var W = svg.viewBox.baseVal.width, H = svg.viewBox.baseVal.height;
    var ids = ["x", "y", "w", "h"];
    var inputs = ids.map(function (k) { return document.getElementById("region-" + k); });
    if (inputs.some(function (i) { return !i; })) { return; }
    var start = null;
    function clamp(v, max) { return Math.max(0, Math.min(max, v)); }
    function point(ev) {
      var b = svg.getBoundingClientRect();
      return [clamp((ev.clientX - b.left) * W / b.width, W), clamp((ev.clientY - b.top) * H / b.height, H)];
    }
    function draw(v) {
      rect.setAttribute("x", v[0]); rect.setAttribute("y", v[1]);
      rect.setAttribute("width", v[2]); rect.setAttribute("height", v[3]);
    }
    function fromDrag(a, b) {
      var x0 = Math.round(Math.min(a[0], b[0])), y0 = Math.round(Math.min(a[1], b[1]));
      var x1 = Math.round(Math.max(a[0], b[0])), y1 = Math.round(Math.max(a[1], b[1]));
      var v = [x0, y0, x1 - x0, y1 - y0];
      draw(v);
      inputs.forEach(function (i, n) { i.value = String(v[n]); });
    }
    svg.addEventListener("pointerdown", function (ev) {
      if (ev.button !== undefined && ev.button !== 0) { return; }
      ev.preventDefault();
      if (svg.setPointerCapture) { try { svg.setPointerCapture(ev.pointerId); } catch (_) {} }
      start = point(ev);
      fromDrag(start, start);
    });
    svg.addEventListener("pointermove", function (ev) {
      if (start) { ev.preventDefault(); fromDrag(start, point(ev)); }
    });
    function end(ev) { if (start) { fromDrag(start, point(ev)); start = null; } }
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", function () { start = null; });
    inputs.forEach(function (i) {
      i.addEventListener("input", function () {
        var v = inputs.map(function (f) { return parseInt(f.value, 10); });
        if (v.every(function (n) { return isFinite(n) && n >= 0; })) { draw(v); }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var l = document.getElementById("live"); if (l) { live(l); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
    Array.prototype.forEach.call(document.querySelectorAll("[data-region-editor]"), regionEditor);
  });
})();
