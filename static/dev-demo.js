// The demo shop's login page: a complete PC-side integration of ScanGate's native API.
//
//   1. POST /api/v1/qrcodes {"app_id"}          -> show image_url, count down to expiry
//   2. follow events_url (Server-Sent Events);  fallback: GET status_url?wait=25&status=<known>
//   3. on "confirmed": POST /api/v1/qrcodes/exchange {"ticket"} -> the user and an ID token
//
// The browser cookie set in step 1 binds the code to this browser; only this browser is given
// the ticket and may exchange it.
//
// "Try the hosted login" plays a relying party of the OpenID Connect flow instead: discovery,
// a PKCE verifier and its S256 challenge, then the browser goes to the authorization endpoint;
// the callback page (dev-callback.js) swaps the code at the token endpoint.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const i18n = window.ScanGateI18n;
  const bi = (zh, en) => i18n.node(zh, en);

  const root = $("demo");
  const appId = root.dataset.appId;
  const phoneUrl = root.dataset.phoneUrl;
  const jwksUrl = root.dataset.jwksUrl;
  const discoveryUrl = root.dataset.discoveryUrl;
  const dev = window.ScanGateDev;
  const defaultAvatar = $("scanner-avatar").getAttribute("src");

  const FINAL = ["confirmed", "cancelled", "expired"];
  const LONG_POLL_WAIT = 25;

  let qr = null; // the create response
  let known = null; // the last status seen
  let generation = 0; // bumped per code, so stale callbacks from an old code do nothing
  let stopFollowing = () => {};
  let deadline = 0;
  let lifetime = 1;
  let ticking = null;

  // ---- helpers ----

  // The API answers with absolute URLs under the configured public URL. Following them by
  // path keeps requests on this page's origin, whatever host name it was opened with, so the
  // binding cookie goes along.
  function local(url) {
    const u = new URL(url, location.href);
    return u.pathname + u.search;
  }

  class ApiError extends Error {
    constructor(status, body, text) {
      super((body && body.message) || text || "HTTP " + status);
      this.status = status;
      this.code = (body && body.error) || "http_" + status;
    }
  }

  async function api(method, path, body, signal) {
    const init = { method, credentials: "same-origin", headers: { accept: "application/json" }, signal };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    log("out", method + " " + path, body === undefined ? null : JSON.stringify(body));
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      if (e.name === "AbortError") throw e;
      log("err", method + " " + path + " — network error", String(e.message || e));
      throw new ApiError(0, { error: "network_error", message: String(e.message || e) });
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    log(res.ok ? "in" : "err", res.status + " " + res.statusText, summarize(data, text));
    if (!res.ok) throw new ApiError(res.status, data, text);
    return data;
  }

  function summarize(data, text) {
    const s = data ? JSON.stringify(data) : text || "";
    return s.length > 160 ? s.slice(0, 157) + "…" : s;
  }

  function log(kind, text, detail) {
    const list = $("log");
    const li = document.createElement("li");
    li.className = kind;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = new Date().toLocaleTimeString(undefined, { hour12: false });
    const arrow = document.createElement("span");
    arrow.className = "arrow";
    arrow.textContent = { out: "→", in: "←", event: "⚡", err: "✕", info: "·" }[kind] || "·";
    const body = document.createElement("span");
    if (typeof text === "string") body.textContent = text;
    else body.appendChild(text);
    if (detail) {
      const d = document.createElement("span");
      d.className = "detail";
      d.textContent = detail;
      body.appendChild(d);
    }
    li.append(time, arrow, body);
    list.appendChild(li);
    while (list.children.length > 200) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  function setStatus(node, isError) {
    const line = $("status-line");
    line.replaceChildren(node);
    line.classList.toggle("error", !!isError);
  }

  function errorNode(e) {
    const f = document.createDocumentFragment();
    f.append(bi("出错了：", "Error: "));
    const c = document.createElement("code");
    c.textContent = e.code || "error";
    f.append(c, " " + (e.message || ""));
    return f;
  }

  function setTransport(zh, en) {
    $("transport").replaceChildren(bi(zh, en));
  }

  // ---- the code's life ----

  async function newCode() {
    const gen = ++generation;
    stopFollowing();
    stopCountdown();
    known = null;
    qr = null;
    $("qr-box").dataset.state = "loading";
    $("scan-url").textContent = "…";
    setStatus(bi("正在获取二维码…", "Getting a QR code…"));
    let created;
    try {
      created = await api("POST", "/api/v1/qrcodes", { app_id: appId });
    } catch (e) {
      if (gen !== generation) return;
      showFinal(bi("无法获取二维码", "Could not get a QR code"));
      setStatus(errorNode(e), true);
      return;
    }
    if (gen !== generation) return;
    qr = created;
    const img = new URL(local(qr.image_url), location.href);
    img.searchParams.set("size", "464");
    $("qr-img").src = img.pathname + img.search;
    $("scan-url").textContent = qr.scan_url;
    $("open-phone").href = phoneUrl + "?random=" + encodeURIComponent(qr.random);
    startCountdown(qr.expires_in);
    onStatus({ random: qr.random, status: "pending", expires_at: qr.expires_at }, null, gen);
    follow(gen);
  }

  function onStatus(view, via, gen) {
    if (gen !== generation) return;
    const changed = view.status !== known;
    known = view.status;
    if (via && changed) {
      log("event", (via === "sse" ? "SSE status: " : "long-poll: ") + view.status, JSON.stringify(view));
    }
    if (!changed && view.status !== "scanned") return;
    const box = $("qr-box");
    switch (view.status) {
      case "pending":
        box.dataset.state = "pending";
        setStatus(bi("等待扫码", "Waiting for a scan"));
        break;
      case "scanned": {
        box.dataset.state = "scanned";
        const who = view.scanned_by || {};
        $("scanner-avatar").src = who.avatar_url || defaultAvatar;
        $("scanner-name").replaceChildren(who.nickname ? document.createTextNode(who.nickname) : bi("微信用户", "WeChat user"));
        // The match step: the number the person taps among three on the phone.
        const number = view.match_number;
        $("match-number").hidden = number == null;
        $("match-number").textContent = number == null ? "" : String(number);
        $("scanned-text").replaceChildren(
          number == null
            ? bi("已扫码 — 请在手机上确认", "Scanned — confirm on your phone")
            : bi("在手机上点选这个数字", "Tap this number on your phone")
        );
        setStatus(
          number == null
            ? bi("已扫码 — 请在手机上确认", "Scanned — confirm on your phone")
            : bi("已扫码 — 在手机上点选 " + number, "Scanned — tap " + number + " on your phone")
        );
        break;
      }
      case "confirmed":
        box.dataset.state = "confirmed";
        stopCountdown(true);
        setStatus(bi("已确认，正在换取用户信息…", "Confirmed — exchanging the ticket…"));
        exchange(view, gen);
        break;
      case "cancelled":
        stopCountdown(true);
        showFinal(
          view.cancel_reason === "wrong_match_number"
            ? bi("手机上点选的数字不对，登录已取消", "The wrong number was tapped: login cancelled")
            : bi("已在手机上取消登录", "Login cancelled on the phone")
        );
        setStatus(bi("已取消", "Cancelled"));
        break;
      case "expired":
        stopCountdown(true);
        showFinal(bi("二维码已过期", "This QR code has expired"));
        setStatus(bi("已过期", "Expired"));
        break;
    }
  }

  function showFinal(node) {
    $("qr-box").dataset.state = "final";
    $("final-text").replaceChildren(node);
  }

  // Server-Sent Events: one `status` event per change, the current one first.
  function follow(gen) {
    if (!("EventSource" in window)) {
      longPoll(gen);
      return;
    }
    const es = new EventSource(local(qr.events_url));
    let opened = false;
    let failures = 0;
    stopFollowing = () => es.close();
    setTransport("推送：Server-Sent Events", "push: Server-Sent Events");
    es.addEventListener("open", () => {
      if (!opened) log("info", "SSE connected", local(qr.events_url));
      opened = true;
      failures = 0;
    });
    es.addEventListener("status", (ev) => {
      let view;
      try {
        view = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      // The server closes the stream after a final state; close first so the browser does
      // not reconnect.
      if (FINAL.includes(view.status)) es.close();
      onStatus(view, "sse", gen);
    });
    es.addEventListener("error", (ev) => {
      if (gen !== generation) return;
      if (ev.data) {
        // A named `error` event from the server: the code is gone or the store is down.
        es.close();
        let body = {};
        try {
          body = JSON.parse(ev.data);
        } catch (_) {}
        log("err", "SSE error event", ev.data);
        showFinal(bi("二维码不可用", "This QR code is unavailable"));
        setStatus(errorNode({ code: body.error, message: body.message }), true);
        return;
      }
      if (FINAL.includes(known)) {
        es.close();
        return;
      }
      failures += 1;
      // No stream at all (a proxy that buffers, an old browser) or one that keeps dropping:
      // long-poll instead. A single drop is left to EventSource's own reconnect.
      if (!opened || failures >= 3 || es.readyState === EventSource.CLOSED) {
        es.close();
        log("err", "SSE unavailable — falling back to long-poll");
        longPoll(gen);
      }
    });
  }

  // Long-poll: the server answers as soon as the status differs from the one we know, or
  // after `wait` seconds. There is no fixed interval; retries after errors back off.
  async function longPoll(gen) {
    const abort = new AbortController();
    stopFollowing = () => abort.abort();
    setTransport("长轮询：?wait=" + LONG_POLL_WAIT, "long-poll: ?wait=" + LONG_POLL_WAIT);
    let backoff = 1000;
    while (gen === generation && !FINAL.includes(known)) {
      const u = new URL(local(qr.status_url), location.href);
      u.searchParams.set("wait", String(LONG_POLL_WAIT));
      if (known) u.searchParams.set("status", known);
      try {
        const view = await api("GET", u.pathname + u.search, undefined, abort.signal);
        backoff = 1000;
        onStatus(view, "poll", gen);
      } catch (e) {
        if (e.name === "AbortError" || gen !== generation) return;
        if (e.status === 400 || e.status === 404) {
          showFinal(bi("二维码不可用", "This QR code is unavailable"));
          setStatus(errorNode(e), true);
          return;
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 15000);
      }
    }
  }

  async function exchange(view, gen) {
    if (!view.ticket) {
      setStatus(
        bi(
          "已确认，但本浏览器没有拿到 ticket：二维码绑定在创建它的浏览器上（Cookie）。",
          "Confirmed, but this browser got no ticket: the code is bound to the browser that created it (a cookie)."
        ),
        true
      );
      return;
    }
    let result;
    try {
      result = await api("POST", "/api/v1/qrcodes/exchange", { ticket: view.ticket });
    } catch (e) {
      if (gen !== generation) return;
      showFinal(bi("换取失败", "The exchange failed"));
      setStatus(errorNode(e), true);
      return;
    }
    if (gen !== generation) return;
    showSignedIn(result);
  }

  // ---- countdown ----

  function startCountdown(seconds) {
    lifetime = Math.max(1, seconds);
    deadline = Date.now() + seconds * 1000;
    $("countdown").classList.remove("low", "done");
    tick();
    ticking = setInterval(tick, 250);
  }

  // A code that reached a final state has no time left to show: the countdown gives way to
  // the state rather than keeping the second it stopped at.
  function stopCountdown(done) {
    if (ticking) clearInterval(ticking);
    ticking = null;
    if (done) $("countdown").classList.add("done");
  }

  function tick() {
    const left = Math.max(0, deadline - Date.now());
    const secs = Math.ceil(left / 1000);
    $("countdown-text").textContent = Math.floor(secs / 60) + ":" + String(secs % 60).padStart(2, "0");
    $("countdown-bar").style.transform = "scaleX(" + (left / 1000 / lifetime).toFixed(4) + ")";
    $("countdown").classList.toggle("low", secs <= 20);
    // The server announces expiry itself; this only covers a lost connection.
    if (deadline - Date.now() < -5000 && !FINAL.includes(known)) {
      stopFollowing();
      onStatus({ status: "expired" }, null, generation);
    }
  }

  // ---- signed in ----

  function showSignedIn(result) {
    const user = result.user || {};
    log("info", "signed in as " + (user.nickname || user.id));
    $("login-card").hidden = true;
    $("welcome").hidden = false;
    $("welcome-avatar").src = user.avatar_url || defaultAvatar;
    // login_count includes this login: 1 is the user's first.
    const again = user.login_count > 1;
    $("welcome-greeting").replaceChildren(again ? bi("欢迎回来，", "Welcome back, ") : bi("欢迎，", "Welcome, "));
    $("welcome-name").replaceChildren(user.nickname ? document.createTextNode(user.nickname) : bi("微信用户", "WeChat user"));
    $("welcome-id").textContent = user.id || "";
    const phone = $("welcome-phone");
    phone.hidden = !user.phone;
    phone.textContent = user.phone ? "+" + (user.phone_country_code || "") + " " + user.phone : "";

    dev.renderJson($("user-json"), user);
    const token = dev.decodeJwt(result.id_token || "");
    dev.renderJson($("token-header"), token.header);
    dev.renderJson($("token-payload"), token.payload);
    $("token-raw").textContent = result.id_token || "";
    renderClaimTimes(token.payload);
    $("result").hidden = false;
    $("result").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function renderClaimTimes(payload) {
    const list = $("claim-times");
    list.replaceChildren();
    for (const claim of ["iat", "auth_time", "exp"]) {
      if (typeof payload[claim] !== "number") continue;
      const li = document.createElement("li");
      const c = document.createElement("code");
      c.textContent = claim;
      li.append(c, " " + new Date(payload[claim] * 1000).toLocaleString());
      list.appendChild(li);
    }
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = jwksUrl;
    a.target = "_blank";
    a.rel = "noopener";
    a.textContent = jwksUrl;
    li.append(bi("签名未在此验证 — 请用 ", "Signature not verified here — verify against "), a);
    list.appendChild(li);
  }

  // ---- the hosted login, as a relying party ----

  async function hostedLogin() {
    const button = $("hosted-login");
    button.disabled = true;
    try {
      if (!window.crypto || !crypto.subtle) {
        throw new ApiError(0, {
          error: "insecure_context",
          message: "PKCE's SHA-256 needs a secure context: open this page on 127.0.0.1, localhost or https",
        });
      }
      const conf = await api("GET", discoveryUrl);
      // The callback must come back to this origin, where the verifier is kept.
      if (new URL(conf.issuer).origin !== location.origin) {
        throw new ApiError(0, {
          error: "wrong_origin",
          message: "the issuer is " + conf.issuer + ": open the demo at " + new URL("/_dev/", conf.issuer).href,
        });
      }
      const verifier = dev.randomString(32);
      const flight = {
        client_id: appId,
        state: dev.randomString(16),
        nonce: dev.randomString(16),
        verifier,
        redirect_uri: new URL("../_dev/callback", conf.issuer + "/").href,
        token_endpoint: conf.token_endpoint,
        issuer: conf.issuer,
      };
      const auth = new URL(conf.authorization_endpoint);
      auth.search = new URLSearchParams({
        response_type: "code",
        client_id: appId,
        redirect_uri: flight.redirect_uri,
        scope: "openid profile",
        state: flight.state,
        nonce: flight.nonce,
        code_challenge: await dev.s256(verifier),
        code_challenge_method: "S256",
        // Always show the page, even with a browser session from an earlier round trip.
        prompt: "login",
        ui_locales: i18n.lang() === "zh" ? "zh-CN" : "en",
      }).toString();
      sessionStorage.setItem(dev.FLIGHT_KEY, JSON.stringify(flight));
      stopFollowing();
      stopCountdown();
      location.assign(auth.href);
    } catch (e) {
      setStatus(errorNode(e), true);
      button.disabled = false;
    }
  }

  // ---- wiring ----

  $("hosted-login").addEventListener("click", hostedLogin);

  $("renew").addEventListener("click", newCode);

  $("sign-out").addEventListener("click", () => {
    $("welcome").hidden = true;
    $("result").hidden = true;
    $("login-card").hidden = false;
    window.scrollTo({ top: 0 });
    newCode();
  });

  // A phone-sized window beside this one; the same window is reused for each new code.
  $("open-phone").addEventListener("click", (ev) => {
    const w = window.open($("open-phone").href, "scangate-phone", "popup,width=430,height=900");
    if (w) {
      ev.preventDefault();
      w.focus();
    }
  });

  $("copy-scan-url").addEventListener("click", async () => {
    const text = $("scan-url").textContent;
    try {
      await navigator.clipboard.writeText(text);
      log("info", "copied the scan URL");
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($("scan-url"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  });

  window.addEventListener("pagehide", () => stopFollowing());
  window.addEventListener("pageshow", (ev) => {
    if (ev.persisted && !FINAL.includes(known)) newCode();
  });

  log("info", "demo app_id = " + appId);
  newCode();
})();
