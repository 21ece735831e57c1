// The admin console's enhancements; every page works without this file.
// - [data-copy="id"] buttons copy the text of element #id.
// - A form with [data-preview-url] sends itself there (with its CSRF token) as the operator
//   edits, and shows the QR image and notes it gets back in #preview-image / #preview-note.
"use strict";

(function () {
  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) return;
        var text = target.textContent.trim();
        var done = function () {
          var label = button.textContent;
          button.textContent = button.getAttribute("data-copied") || "✓";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(target); });
        } else {
          select(target);
          try { document.execCommand("copy"); done(); } catch (e) { /* selected for the user */ }
        }
      });
    });
  }

  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function livePreview() {
    var form = document.querySelector("form[data-preview-url]");
    if (!form) return;
    var image = document.getElementById("preview-image");
    var note = document.getElementById("preview-note");
    var url = form.getAttribute("data-preview-url");
    var csrf = form.querySelector('input[name="csrf"]');
    var timer = null;
    var sent = 0;

    function refresh() {
      var body = new FormData(form);
      var mine = ++sent;
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "x-csrf-token": csrf ? csrf.value : "" },
      })
        .then(function (res) { return res.json(); })
        .then(function (answer) {
          if (mine !== sent) return;
          if (answer.image) {
            image.src = answer.image;
            image.setAttribute("data-fingerprint", answer.fingerprint || "");
          }
          note.textContent = answer.note || "";
          note.className = "preview-note " + (answer.warn ? "alert alert-warn" : "muted small");
        })
        .catch(function () { /* the last image stays */ });
    }

    function soon() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    }
    form.addEventListener("input", soon);
    form.addEventListener("change", soon);
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    livePreview();
  });
})();
