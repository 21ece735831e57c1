// Chinese or English for ScanGate pages.
//
// Pages carry both languages (`<span class="zh">` beside `<span class="en">`); this script,
// loaded in <head> so the first paint is already right, picks one — the page's pinned choice
// (data-lang-pinned), else the saved choice, else navigator.language — and sets it on
// <html data-lang>. Any [data-lang-toggle] button switches.
(function () {
  "use strict";
  var KEY = "scangate.lang";
  var root = document.documentElement;

  function saved() {
    try {
      var v = window.localStorage.getItem(KEY);
      return v === "zh" || v === "en" ? v : null;
    } catch (e) {
      return null;
    }
  }

  function preferred() {
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
    return /^zh\b/i.test(langs[0] || "") ? "zh" : "en";
  }

  // A page may pin its language (an explicit request, such as OIDC's ui_locales).
  var pinned = root.getAttribute("data-lang-pinned");
  var current = pinned === "zh" || pinned === "en" ? pinned : saved() || preferred();

  function apply(lang) {
    current = lang;
    root.setAttribute("data-lang", lang);
    root.setAttribute("lang", lang === "zh" ? "zh-CN" : "en");
  }

  function set(lang) {
    apply(lang);
    try {
      window.localStorage.setItem(KEY, lang);
    } catch (e) {
      /* private mode: the choice lasts for this page only */
    }
  }

  // Text in the current language, for places that cannot hold both (attributes, titles).
  function text(zh, en) {
    return current === "zh" ? zh : en;
  }

  // Both languages as nodes, so a later switch needs no re-render.
  function node(zh, en) {
    var f = document.createDocumentFragment();
    var a = document.createElement("span");
    a.className = "zh";
    a.lang = "zh-CN";
    a.textContent = zh;
    var b = document.createElement("span");
    b.className = "en";
    b.lang = "en";
    b.textContent = en;
    f.appendChild(a);
    f.appendChild(b);
    return f;
  }

  apply(current);
  window.ScanGateI18n = {
    lang: function () {
      return current;
    },
    set: set,
    text: text,
    node: node,
  };

  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("[data-lang-toggle]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function () {
        set(current === "zh" ? "en" : "zh");
      });
    }
  });
})();
