/*! ScanGate QR login widget. No dependencies.
 *
 *   <script src="https://id.example.com/static/scangate.js"></script>
 *   ScanGate.mount(element, { appId, onSuccess(result) { … } })
 *
 * Creates a QR code (POST /api/v1/qrcodes), follows it by Server-Sent Events with a long-poll
 * fallback, renews it when it expires while the page is visible, and exchanges the ticket
 * (POST /api/v1/qrcodes/exchange) for the user and tokens. Requests carry credentials (the
 * binding cookie) and the bind token, so the ticket is revealed to this browser only.
 *
 * On a phone, which cannot scan its own screen, the create answer names `open_link_url`; the
 * widget then shows "Open in WeChat", WeChat's link to the Mini Program's confirm page at the
 * same code (`openLink: false` turns it off). Back from WeChat, the widget asks for the status.
 */
(function (w, d) {
  "use strict";

  var script = d.currentScript;
  // ScanGate's base URL: where this script was loaded from, less /static/scangate.js.
  var scriptBase = script && script.src ? script.src.replace(/\/static\/scangate\.js(\?.*)?$/, "") : "";
  var FINAL = { confirmed: 1, cancelled: 1, expired: 1 };
  var TEXT = {
    "zh-CN": {
      title: "微信扫码登录", loading: "正在获取二维码…", hint: "打开微信，扫一扫登录",
      expires: "{t} 后二维码失效", scanned: "扫码成功", confirm: "请在手机上确认登录",
      success: "登录成功", cancelled: "你已取消此次登录", expired: "二维码已过期",
      retry: "重新扫码", refresh: "刷新二维码", error: "出错了", again: "重试", someone: "微信用户",
      welcome: "欢迎，{n}", rescan: "如需登录，请重新扫码", renew: "刷新后请重新扫码", later: "请稍后重试",
      match: "在手机上点选这个数字", matchHint: "手机上会出现三个数字，请点选 {n}",
      declined: "你已在手机上取消此次登录", wrong_match_number: "手机上点选的数字不对，此次登录已取消",
      page: "此次登录已取消",
      open: "在微信中打开", openHint: "或用另一部手机的微信扫码"
    },
    en: {
      title: "Sign in with WeChat", loading: "Loading QR code…", hint: "Scan with WeChat to sign in",
      expires: "Expires in {t}", scanned: "Scanned", confirm: "Confirm the sign-in on your phone",
      success: "Signed in", cancelled: "Sign-in cancelled", expired: "QR code expired",
      retry: "Try again", refresh: "Refresh", error: "Something went wrong", again: "Retry",
      someone: "WeChat user", welcome: "Welcome, {n}", rescan: "Scan again to sign in",
      renew: "Refresh to get a new code", later: "Please try again",
      match: "Tap this number on your phone", matchHint: "Your phone shows three numbers: tap {n}",
      declined: "Sign-in declined on the phone",
      wrong_match_number: "The wrong number was tapped on the phone: this sign-in was cancelled",
      page: "Sign-in cancelled",
      open: "Open in WeChat", openHint: "Or scan the code with WeChat on another phone"
    }
  };

  function el(tag, cls, parent) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function fail(code, message) {
    var e = new Error(message || code);
    e.code = code;
    return e;
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (_) { return null; }
  }

  function mount(host, o) {
    o = o || {};
    var base = (o.baseUrl || scriptBase || location.origin).replace(/\/+$/, "");
    var lang = o.lang || (/^zh/i.test(navigator.language || "") ? "zh-CN" : "en");
    var t = TEXT[lang] || TEXT[lang.slice(0, 2) === "zh" ? "zh-CN" : "en"];
    var size = o.size || 200;
    var maxRenewals = o.maxRenewals == null ? 10 : o.maxRenewals;
    var gen = 0, qr = null, known = null, stop = function () {}, ticker = null, deadline = 0;
    var renewals = 0, checked = false, dead = false;

    if (o.css !== false && !d.querySelector("link[data-scangate]")) {
      var link = el("link", null, d.head);
      link.rel = "stylesheet";
      link.href = base + "/static/scangate-widget.css";
      link.setAttribute("data-scangate", "");
    }

    // ---- the widget's DOM ----
    var root = el("div", "sg");
    root.lang = lang;
    el("div", "sg-title", root).textContent = t.title;
    // "Open in WeChat": shown once the code's link has come (a phone's browser only).
    var opener = el("div", "sg-open", root);
    opener.hidden = true;
    var openLink = el("a", "sg-open-link", opener);
    openLink.textContent = t.open;
    el("div", "sg-open-hint", opener).textContent = t.openHint;
    var box = el("div", "sg-box", root);
    var img = el("img", "sg-qr", box);
    img.alt = t.title;
    img.width = img.height = size;
    box.style.width = box.style.height = size + "px";
    var cover = el("div", "sg-cover", box);
    var icon = el("div", "sg-icon", cover);
    var avatar = el("img", "sg-avatar", cover);
    avatar.alt = "";
    var name = el("div", "sg-name", cover);
    var number = el("div", "sg-number", cover);
    number.setAttribute("aria-live", "polite");
    var msg = el("div", "sg-msg", cover);
    var button = el("button", "sg-btn", cover);
    button.type = "button";
    button.onclick = function () { renewals = 0; start(); };
    var hint = el("div", "sg-hint", root);
    var timer = el("div", "sg-timer", root);
    host.textContent = "";
    host.appendChild(root);

    var HINTS = { pending: t.hint, scanned: t.confirm, cancelled: t.rescan, expired: t.renew, error: t.later };

    function show(state, text, action, note) {
      root.setAttribute("data-state", state);
      if (state !== "scanned") showNumber(null);
      msg.textContent = text || "";
      button.textContent = action || "";
      button.hidden = !action;
      hint.textContent = note || HINTS[state] || "";
      if (state !== "pending" && state !== "scanned") timer.textContent = "";
    }

    // The match step: the number the person taps among three on the phone.
    function showNumber(n) {
      if (n == null) {
        root.removeAttribute("data-match");
        number.textContent = "";
        return;
      }
      root.setAttribute("data-match", String(n));
      number.textContent = String(n);
      msg.textContent = t.match;
      hint.textContent = t.matchHint.replace("{n}", String(n));
    }

    function emit(fn, arg) {
      if (typeof fn === "function") {
        try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
      }
    }

    // ---- HTTP ----
    function call(method, url, body, signal) {
      var headers = { accept: "application/json" };
      if (qr && qr.bind_token) headers["x-scangate-bind"] = qr.bind_token;
      if (body) headers["content-type"] = "application/json";
      return fetch(url, {
        method: method, credentials: "include", headers: headers, signal: signal,
        body: body ? JSON.stringify(body) : undefined
      }).then(function (res) {
        return res.text().then(function (text) {
          var data = parse(text);
          if (!res.ok) throw fail((data && data.error) || "http_" + res.status, data && data.message);
          return data;
        });
      });
    }

    // ---- one code's life ----
    function start(given) {
      var g = ++gen;
      stop();
      clearInterval(ticker);
      known = null;
      checked = false;
      opener.hidden = true;
      openLink.removeAttribute("href");
      show("loading", t.loading);
      var create = given ? Promise.resolve(given)
        : o.create ? Promise.resolve().then(o.create)
        : call("POST", base + "/api/v1/qrcodes", { app_id: o.appId });
      create.then(function (created) {
        if (g !== gen) return;
        qr = created;
        root.setAttribute("data-random", qr.random);
        var src = new URL(qr.image_url, base + "/");
        src.searchParams.set("size", String(Math.min(1024, Math.max(128, size * 2))));
        img.src = src.href;
        deadline = Date.now() + (qr.expires_in || 0) * 1000;
        tick();
        ticker = setInterval(tick, 1000);
        onView({ random: qr.random, status: "pending" }, g);
        follow(g);
        if (qr.open_link_url && o.openLink !== false) offerLink(g);
      }, function (e) {
        if (g === gen) broken(e);
      });
    }

    function onView(v, g) {
      if (g !== gen || v.status === known) return;
      known = v.status;
      emit(o.onStatus, v);
      if (FINAL[v.status]) {
        stop();
        clearInterval(ticker);
      }
      if (v.status === "pending") {
        show("pending");
      } else if (v.status === "scanned") {
        var who = v.scanned_by || {};
        avatar.src = who.avatar_url || base + "/static/avatar.svg";
        name.textContent = who.nickname || t.someone;
        show("scanned", t.scanned);
        if (v.match_number != null) {
          showNumber(v.match_number);
        } else {
          // An event stream that carried no cookie has no number; ask with the bind token.
          call("GET", qr.status_url).then(function (view) {
            if (g === gen && known === "scanned" && view.match_number != null) showNumber(view.match_number);
          }, function () {});
        }
        emit(o.onScanned, who);
      } else if (v.status === "confirmed") {
        confirmed(v, g);
      } else if (v.status === "cancelled") {
        show("cancelled", t[v.cancel_reason] || t.cancelled, t.retry);
        emit(o.onCancel, v.cancel_reason);
      } else if (v.status === "expired") {
        show("expired", t.expired, t.refresh);
        emit(o.onExpired);
        renew();
      }
    }

    // The link that opens the Mini Program at this code, from WeChat through ScanGate. A URL
    // Link is a web page of WeChat's: it opens in a new tab so that this page keeps following
    // the code. Without a link (WeChat refused, too little time) the QR code stays alone.
    function offerLink(g) {
      call("GET", new URL(qr.open_link_url, base + "/").href).then(function (link) {
        if (g !== gen || !link || !link.url) return;
        openLink.href = link.url;
        if (link.kind === "url_link") {
          openLink.target = "_blank";
          openLink.rel = "noopener";
        } else {
          openLink.removeAttribute("target");
        }
        opener.hidden = false;
      }, function () {});
    }

    // An expired code is replaced at once while the page is seen; a hidden page waits for
    // `visibilitychange`, and a page nobody looks at stops after `maxRenewals`.
    function renew() {
      if (d.visibilityState !== "hidden" && renewals < maxRenewals) {
        renewals++;
        start();
      }
    }

    function onVisibility() {
      if (d.visibilityState !== "visible") return;
      if (known === "expired") {
        renewals = 0;
        renew();
      } else if (qr && (known === "pending" || known === "scanned")) {
        // Back from WeChat: a stream the phone suspended may have missed the change.
        var g = gen;
        call("GET", qr.status_url).then(function (v) { onView(v, g); }, function () {});
      }
    }
    d.addEventListener("visibilitychange", onVisibility);

    function confirmed(v, g) {
      show("confirmed", t.success);
      // The ticket may be missing from an event stream that carried no cookie; ask with the
      // bind token.
      var ticket = v.ticket ? Promise.resolve(v) : call("GET", qr.status_url);
      ticket.then(function (view) {
        if (!view.ticket) throw fail("forbidden", "this code belongs to another browser");
        if (o.exchange === false) return view;
        return call("POST", base + "/api/v1/qrcodes/exchange", { ticket: view.ticket });
      }).then(function (result) {
        if (g !== gen) return;
        var who = (result && result.user) || {};
        show("success", t.success, "", who.nickname && t.welcome.replace("{n}", who.nickname));
        emit(o.onSuccess, result);
      }, function (e) {
        if (g === gen) broken(e);
      });
    }

    function broken(e) {
      stop();
      clearInterval(ticker);
      known = null;
      show("error", t.error, t.again);
      emit(o.onError, e);
    }

    // Server-Sent Events: the current status first, then one event per change.
    function follow(g) {
      if (!w.EventSource || o.transport === "poll") return poll(g);
      var es = new EventSource(qr.events_url, { withCredentials: true });
      var opened = false;
      stop = function () { es.close(); };
      es.onopen = function () { opened = true; };
      es.addEventListener("status", function (ev) {
        var v = parse(ev.data);
        if (v) onView(v, g);
      });
      es.addEventListener("error", function (ev) {
        if (g !== gen) return;
        if (ev.data) {
          var b = parse(ev.data) || {};
          es.close();
          return broken(fail(b.error, b.message));
        }
        // Never connected (a proxy that buffers, no CORS): long-poll instead. Once connected,
        // the browser reconnects by itself and the server repeats the current status.
        if (!opened || es.readyState === 2) {
          es.close();
          poll(g);
        }
      });
    }

    // Long-poll: each request is held until the status changes (or 25 s pass).
    function poll(g) {
      var ctl = w.AbortController ? new AbortController() : null;
      var active = true;
      var backoff = 1000;
      stop = function () {
        active = false;
        if (ctl) ctl.abort();
      };
      (function next() {
        if (!active || g !== gen || FINAL[known]) return;
        var url = qr.status_url + "?wait=25" + (known ? "&status=" + known : "");
        call("GET", url, null, ctl && ctl.signal).then(function (v) {
          backoff = 1000;
          onView(v, g);
          next();
        }, function (e) {
          if (!active || g !== gen) return;
          if (e.code === "not_found") return broken(e);
          setTimeout(next, backoff);
          backoff = Math.min(backoff * 2, 30000);
        });
      })();
    }

    // The countdown, and one status check when it runs out (the server says when it expires).
    function tick() {
      var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      var s = left % 60;
      timer.textContent = t.expires.replace("{t}", Math.floor(left / 60) + ":" + (s < 10 ? "0" : "") + s);
      if (left === 0 && !checked) {
        checked = true;
        var g = gen;
        call("GET", qr.status_url).then(function (v) { onView(v, g); }, function () {});
      }
    }

    start(o.qr);

    return {
      renew: function () { renewals = 0; start(); },
      destroy: function () {
        if (dead) return;
        dead = true;
        gen++;
        stop();
        clearInterval(ticker);
        d.removeEventListener("visibilitychange", onVisibility);
        if (root.parentNode) root.parentNode.removeChild(root);
      },
      get state() { return root.getAttribute("data-state"); },
      get random() { return qr && qr.random; }
    };
  }

  w.ScanGate = { mount: mount };
})(window, document);
