// casework workbench: keyboard shortcuts, the help overlay, triage keys, focus after htmx swaps.
// Served from /static (the pages' Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var GO = { c: "/cases", s: "/search", t: "/triage", o: "/ops", h: "/" };
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
      if (chooseAction(key)) { event.preventDefault(); }
    } else if (/^[1-9]$/.test(key)) {
      if (chooseCandidate(key)) { event.preventDefault(); }
    }
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-help-open]");
    if (opener) { openHelp(); }
  });

  // After htmx puts the next triage item in, move focus to it so the keyboard carries on there.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    var focusable = target && (target.matches && target.matches("[data-focus-on-load]") ? target
      : target.querySelector && target.querySelector("[data-focus-on-load]"));
    if (focusable) { focusable.focus(); }
  });
})();
