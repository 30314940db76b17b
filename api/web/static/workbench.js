// casework workbench: keyboard shortcuts, the help overlay, triage keys, get-next, SLA countdowns,
// focus on load and after htmx swaps.
// Served from /static (the pages' Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var GO = { c: "/cases", s: "/search", t: "/triage", o: "/ops", h: "/", d: "/supervisor", b: "/notifications" };
  var pendingG = false;
  var gTimer = null;

  var NOT_TYPED = { radio: true, checkbox: true, button: true, submit: true, reset: true };

  // Keys belong to the page unless the focus is somewhere one types (a radio button is not).
  function typingIn(target) {
    if (!target || !target.closest) { return false; }
    var field = target.closest("input, textarea, select, [contenteditable]");
    if (!field) { return false; }
    return !(field.tagName === "INPUT" && NOT_TYPED[(field.getAttribute("type") || "text").toLowerCase()]);
  }

  function searchBox() {
    return document.querySelector("[data-main-search]") || document.querySelector("[data-search-box]");
  }

  function helpDialog() { return document.getElementById("help"); }

  function openHelp() {
    var dialog = helpDialog();
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  function triageForm() { return document.querySelector("[data-triage-form]"); }

  function chooseAction(key) {
    var form = triageForm();
    if (!form) { return false; }
    var radio = form.querySelector('[data-action-key="' + key + '"]');
    if (!radio) { return false; }
    radio.checked = true;
    var reason = form.querySelector("[data-reason]");
    if (reason) { reason.focus(); }
    return true;
  }

  function chooseCandidate(n) {
    var form = triageForm();
    var radio = form && form.querySelector('[data-candidate="' + n + '"]');
    if (!radio) { return false; }
    radio.checked = true;
    radio.focus();
    return true;
  }

  // "Get next": the page's get-next form (the start page's, a queue's or the case page's).
  function getNext() {
    var form = document.querySelector("[data-get-next]");
    if (!form) { return false; }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    return true;
  }

  // SLA countdowns and lease ends: "in 3 h 5 min" / "2 h ago", kept current every 30 seconds.
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) { return h ? d + " d " + h + " h" : d + " d"; }
    if (h) { return m ? h + " h " + m + " min" : h + " h"; }
    return m ? m + " min" : "under a minute";
  }

  function countdowns() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      var text = at >= now ? "in " + span(at - now) : span(at - now) + " ago";
      el.textContent = (el.getAttribute("data-prefix") || "") + text;
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typingIn(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var dialog = helpDialog();
    if (dialog && dialog.open) { return; }
    if (pendingG) {
      pendingG = false;
      clearTimeout(gTimer);
      if (GO[event.key]) { event.preventDefault(); window.location.assign(GO[event.key]); }
      return;
    }
    var key = event.key;
    if (key === "/") {
      var box = searchBox();
      if (box) { event.preventDefault(); box.focus(); box.select(); }
    } else if (key === "g") {
      pendingG = true;
      gTimer = setTimeout(function () { pendingG = false; }, 1500);
    } else if (key === "?") {
      event.preventDefault();
      openHelp();
    } else if (key === "a" || key === "n" || key === "x") {
      if (chooseAction(key)) { event.preventDefault(); } else if (key === "n" && getNext()) { event.preventDefault(); }
    } else if (key === "c") {
      var code = document.getElementById("task-code");
      if (code) { event.preventDefault(); code.focus(); }
    } else if (/^[1-9]$/.test(key)) {
      if (chooseCandidate(key)) { event.preventDefault(); }
    }
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-help-open]");
    if (opener) { openHelp(); }
  });

  setInterval(countdowns, 30000);

  // A page that asks for it (the case page after get-next) starts with the focus on its task.
  var first = document.querySelector("[data-autofocus]");
  if (first) { first.focus(); }

  // After htmx puts the next triage item in, move focus to it so the keyboard carries on there.
  // The same for a refused completion: the focus goes to why.
  function focusIn(root) {
    if (!root || !root.matches || !root.isConnected) { return false; }
    var focusable = root.matches("[data-focus-on-load]") ? root : root.querySelector("[data-focus-on-load]");
    if (focusable) { focusable.focus(); }
    return Boolean(focusable);
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    if (!focusIn(event.detail && event.detail.target)) { focusIn(event.target); }
  });
})();
