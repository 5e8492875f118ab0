// trajforge view: keyboard navigation. The only script the pages load (the
// Content-Security-Policy allows no other); it reads the page, never fetches.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll(".row"));
  var steps = Array.prototype.slice.call(document.querySelectorAll(".step"));
  var selected = -1;
  var stepAt = -1;

  function follow(rel) {
    var a = document.querySelector("nav a[rel=" + rel + "]");
    if (a) { window.location.assign(a.href); }
  }

  function select(i) {
    if (!rows.length) { return; }
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (selected >= 0) { rows[selected].classList.remove("sel"); }
    selected = i;
    rows[i].classList.add("sel");
    rows[i].scrollIntoView({ block: "nearest" });
    document.body.setAttribute("data-selected", rows[i].getAttribute("data-id") || "");
  }

  function step(delta) {
    if (!steps.length) { return; }
    stepAt = Math.max(0, Math.min(steps.length - 1, stepAt + delta));
    steps.forEach(function (s) { s.classList.remove("current"); });
    var s = steps[stepAt];
    s.classList.add("current");
    s.scrollIntoView({ block: "start" });
    document.body.setAttribute("data-step", s.id);
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) { return; }
    switch (e.key) {
      case "j":
        if (rows.length) { select(selected + 1); } else { follow("next"); }
        break;
      case "k":
        if (rows.length) { select(selected - 1); } else { follow("prev"); }
        break;
      case "Enter":
      case "o":
        if (selected >= 0) {
          var a = rows[selected].querySelector("a.open");
          if (a) { window.location.assign(a.href); }
        }
        break;
      case "n": step(1); break;
      case "N": step(-1); break;
      case "/":
        var q = document.getElementById("q");
        if (q) { q.focus(); } else { window.location.assign("/search"); }
        break;
      default: return;
    }
    e.preventDefault();
  });
  document.body.setAttribute("data-app", "ready");
})();
