// The phone simulator: plays the WeChat Mini Program against ScanGate's Mini Program API.
//
//   wx.login()            -> POST /_dev/wechat/_sim/login {"appid","openid"?} -> {"code","openid"}
//   log in                -> POST /api/mp/v1/session {"appid","code"}         -> bearer token
//   scan                  -> POST /api/mp/v1/qrcodes/{random}/scan
//   getPhoneNumber        -> POST /_dev/wechat/_sim/phone_code {…}             -> {"code"}
//   chooseAvatar upload   -> POST /api/mp/v1/me/avatar (multipart)
//   confirm / cancel      -> POST /api/mp/v1/qrcodes/{random}/confirm | /cancel
//
// Fake users (openid, bearer token, label) are kept in localStorage. Opened without a code,
// the simulator offers the latest one the demo Mini Program can scan (GET /_dev/latest-code),
// as a phone pointed at the screen would see it; it asks again whenever this window comes back
// into view, never on a timer.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const i18n = window.ScanGateI18n;
  const bi = (zh, en) => i18n.node(zh, en);

  const appid = $("phone").dataset.appid;
  const USERS_KEY = "scangate.dev.phone.users";
  const CURRENT_KEY = "scangate.dev.phone.current";
  const LABELS = ["Alice", "小明", "Bob", "小红", "Carol", "阿强", "Dave", "美美", "Erin", "老王", "Frank", "Grace"];
  const COLORS = ["#07c160", "#4f46e5", "#f97316", "#0ea5e9", "#e11d48", "#a855f7", "#14b8a6", "#eab308"];

  let users = loadUsers();
  let currentOpenid = storageGet(CURRENT_KEY);
  let random = null; // the code being handled
  let scanned = null; // the scan response
  let tapped = null; // the match number tapped, if the app has the match step
  let countdown = null;
  let offered = null; // the random filled in from /_dev/latest-code

  // ---- storage ----

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (_) {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (_) {
      /* private mode: users last for this page only */
    }
  }

  function loadUsers() {
    try {
      const list = JSON.parse(storageGet(USERS_KEY) || "[]");
      return Array.isArray(list) ? list.filter((u) => u && typeof u.openid === "string") : [];
    } catch (_) {
      return [];
    }
  }

  function saveUsers() {
    storageSet(USERS_KEY, JSON.stringify(users));
    storageSet(CURRENT_KEY, currentOpenid || "");
  }

  function currentUser() {
    return users.find((u) => u.openid === currentOpenid) || null;
  }

  // ---- HTTP ----

  class ApiError extends Error {
    constructor(status, body, text, path) {
      super((body && body.message) || text || "HTTP " + status);
      this.status = status;
      this.code = (body && body.error) || (status ? "http_" + status : "network_error");
      this.path = path;
    }
  }

  async function api(method, path, body, token) {
    const headers = { accept: "application/json" };
    const init = { method, headers, credentials: "omit" };
    if (token) headers.authorization = "Bearer " + token;
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: "network_error", message: String(e.message || e) }, "", path);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) throw new ApiError(res.status, data, text.slice(0, 200), path);
    return data;
  }

  // wx.login() then the Mini Program's session call; `openid` logs an existing fake user in
  // again.
  async function login(openid) {
    const sim = await api("POST", "/_dev/wechat/_sim/login", openid ? { appid, openid } : { appid });
    const session = await api("POST", "/api/mp/v1/session", { appid, code: sim.code });
    return { openid: sim.openid, session };
  }

  function absorb(user, me) {
    if (!me) return;
    user.id = me.id || user.id;
    user.nickname = me.nickname || null;
    user.avatar_url = me.avatar_url || null;
    user.has_phone = !!me.has_phone;
    user.phone = me.phone || null;
  }

  // An authenticated call; an expired or unknown token (a reset database) logs in again once.
  async function authed(method, path, body) {
    const user = currentUser();
    try {
      return await api(method, path, body, user.token);
    } catch (e) {
      if (e.status !== 401) throw e;
      const again = await login(user.openid);
      user.token = again.session.token;
      absorb(user, again.session.user);
      saveUsers();
      return api(method, path, body, user.token);
    }
  }

  async function createUser() {
    const { openid, session } = await login(null);
    const used = new Set(users.map((u) => u.label));
    const label = LABELS.find((l) => !used.has(l)) || "User " + (users.length + 1);
    const user = { openid, token: session.token, label, created_at: Date.now() };
    absorb(user, session.user);
    users = users.filter((u) => u.openid !== openid).concat(user);
    currentOpenid = openid;
    saveUsers();
    renderUsers();
    return user;
  }

  // ---- avatars ----

  const generated = new Map();

  function colorFor(openid) {
    let h = 0;
    for (const c of openid) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return COLORS[h % COLORS.length];
  }

  function drawAvatar(user) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 160;
    const g = canvas.getContext("2d");
    g.fillStyle = colorFor(user.openid);
    g.fillRect(0, 0, 160, 160);
    g.fillStyle = "#fff";
    g.font = "600 80px " + getComputedStyle(document.body).fontFamily;
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText(Array.from(user.label || "?")[0].toUpperCase(), 80, 86);
    return canvas;
  }

  // The avatar shown for a user: the uploaded one, else a generated letter.
  function avatarSrc(user) {
    if (user.avatar_url) return user.avatar_url;
    if (!generated.has(user.openid)) generated.set(user.openid, drawAvatar(user).toDataURL("image/png"));
    return generated.get(user.openid);
  }

  // chooseAvatar: upload the generated picture, as a Mini Program uploads the chosen file.
  async function uploadAvatar(user) {
    const blob = await new Promise((resolve) => drawAvatar(user).toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("file", blob, "avatar.png");
    const res = await authed("POST", "/api/mp/v1/me/avatar", form);
    return res.avatar_url;
  }

  // ---- rendering ----

  function show(screen) {
    for (const id of ["screen-home", "screen-confirm", "screen-done"]) $(id).hidden = id !== screen;
    if (screen !== "screen-confirm") stopCountdown();
    $("phone").querySelector(".mp-body").scrollTop = 0;
  }

  function renderUsers() {
    const list = $("users");
    list.replaceChildren();
    $("users-empty").hidden = users.length > 0;
    for (const user of users) {
      const li = document.createElement("li");
      li.className = "user" + (user.openid === currentOpenid ? " selected" : "");
      li.tabIndex = 0;
      li.setAttribute("role", "radio");
      li.setAttribute("aria-checked", String(user.openid === currentOpenid));

      const img = document.createElement("img");
      img.className = "avatar avatar-md";
      img.alt = "";
      img.src = avatarSrc(user);

      const text = document.createElement("div");
      text.className = "user-text";
      const name = document.createElement("span");
      name.className = "user-name";
      name.append(user.label);
      if (user.nickname && user.nickname !== user.label) {
        const nick = document.createElement("span");
        nick.className = "user-nick";
        nick.textContent = "· " + user.nickname;
        name.append(nick);
      }
      if (user.has_phone) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.append(bi("手机", "phone"));
        name.append(tag);
      }
      const openid = document.createElement("span");
      openid.className = "user-openid mono";
      openid.textContent = "openid " + user.openid;
      text.append(name, openid);

      const check = document.createElement("span");
      check.className = "user-check";

      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "user-remove";
      remove.textContent = "×";
      remove.title = i18n.text("从本机移除", "Remove from this browser");
      remove.setAttribute("aria-label", remove.title);
      remove.addEventListener("click", (ev) => {
        ev.stopPropagation();
        users = users.filter((u) => u.openid !== user.openid);
        if (currentOpenid === user.openid) currentOpenid = users.length ? users[users.length - 1].openid : null;
        saveUsers();
        renderUsers();
      });

      const select = () => {
        currentOpenid = user.openid;
        saveUsers();
        renderUsers();
      };
      li.addEventListener("click", select);
      li.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select();
        }
      });
      li.append(img, text, check, remove);
      list.appendChild(li);
    }
  }

  // ---- errors ----

  const HINTS = {
    network_error: ["网络错误，服务器在运行吗？", "Network error — is the server running?"],
    unauthorized: ["登录态无效", "Not logged in"],
    forbidden: ["不允许这样做", "Not allowed"],
    not_found: ["找不到这个二维码", "No such QR code"],
    conflict: ["这个二维码已被使用，或已被其他用户扫描", "This code was already used, or scanned by another user"],
    expired: ["二维码已过期，请在电脑上刷新", "The code has expired — get a new one on the computer"],
    invalid_code: ["微信拒绝了这个 code", "WeChat refused the code"],
    invalid_request: ["请求有误", "The request was refused"],
    rate_limited: ["操作太频繁，请稍后再试", "Too many requests — try again shortly"],
    wechat_error: ["微信接口出错", "The WeChat API failed"],
    unavailable: ["服务暂时不可用", "The service is temporarily unavailable"],
  };

  function showError(e) {
    let hint = HINTS[e.code] || ["出错了", "Something went wrong"];
    if (e.path && e.path.startsWith("/_dev/wechat/") && (e.status === 404 || e.status === 405)) {
      hint = ["微信模拟器不可用", "The WeChat simulator is not available"];
    }
    $("error-title").replaceChildren(bi(hint[0], hint[1]));
    $("error-code").textContent = e.code + (e.status ? " · " + e.status : "");
    $("error-code").hidden = !e.code;
    $("error-message").textContent = e.message || "";
    $("error").hidden = false;
    $("error").scrollIntoView({ block: "nearest" });
  }

  function localError(zh, en) {
    $("error-title").replaceChildren(bi(zh, en));
    $("error-code").hidden = true;
    $("error-message").textContent = "";
    $("error").hidden = false;
  }

  function hideError() {
    $("error").hidden = true;
  }

  // Runs an action with its button disabled and any failure shown.
  async function busy(button, action) {
    hideError();
    button.classList.add("busy");
    button.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (e) {
      showError(e);
    } finally {
      button.classList.remove("busy");
      button.removeAttribute("aria-busy");
    }
  }

  // ---- the code ----

  // A random from what a Mini Program may be given: the bare random (`scene`), or the scan
  // URL `…/q/<random>` (`q`), or a simulator link `…?random=<random>`.
  function parseRandom(input) {
    const text = (input || "").trim();
    if (!text) return null;
    const plain = /^[A-Za-z0-9_-]{22,32}$/;
    if (plain.test(text)) return text;
    let decoded = text;
    try {
      decoded = decodeURIComponent(text);
    } catch (_) {}
    const inPath = decoded.match(/\/q\/([A-Za-z0-9_-]{22,32})(?:[/?#]|$)/);
    if (inPath) return inPath[1];
    const inQuery = decoded.match(/[?&](?:random|scene)=([A-Za-z0-9_-]{22,32})(?:[&#]|$)/);
    if (inQuery) return inQuery[1];
    return null;
  }

  function launchRandom() {
    const p = new URLSearchParams(location.search);
    return parseRandom(p.get("random") || p.get("scene") || p.get("q") || "");
  }

  // Fills in the latest code unless the simulator was launched with one, is handling one, or
  // holds one the user typed.
  async function offerLatest() {
    const input = $("random-input");
    const typed = input.value.trim();
    if (launchRandom() || random || (typed && typed !== offered)) return;
    let latest = null;
    try {
      latest = await api("GET", "/_dev/latest-code");
    } catch (_) {
      latest = null; // none yet (404), or the server is away: nothing to offer
    }
    if (launchRandom() || random || (input.value.trim() && input.value.trim() !== offered)) return;
    const usable = latest && (latest.status === "pending" || latest.status === "scanned");
    input.value = usable ? latest.random : "";
    offered = usable ? latest.random : null;
    const note = $("offered");
    note.hidden = !usable;
    if (usable) {
      const until = new Date(latest.expires_at).toLocaleTimeString(undefined, { hour12: false });
      note.replaceChildren(
        bi(
          "已填入应用 " + latest.client_id + " 最新的二维码（" + until + " 前有效）",
          "Filled in: the latest code of app " + latest.client_id + " (valid until " + until + ")"
        )
      );
    }
  }

  async function scan() {
    const r = parseRandom($("random-input").value);
    if (!r) {
      localError(
        "这不是二维码：请粘贴随机码或 …/q/<random> 链接",
        "Not a QR code: paste the random or a …/q/<random> URL"
      );
      $("random-input").focus();
      return;
    }
    if (!currentUser()) await createUser();
    scanned = await authed("POST", "/api/mp/v1/qrcodes/" + encodeURIComponent(r) + "/scan");
    random = r;
    history.replaceState(null, "", location.pathname + "?random=" + encodeURIComponent(r));
    showConfirm();
  }

  function showConfirm() {
    const user = currentUser();
    const app = scanned.app || {};
    const name = app.name || "?";
    $("app-name").textContent = name;
    $("app-letter").textContent = Array.from(name)[0].toUpperCase();
    if (app.logo_url) {
      $("app-logo").src = app.logo_url;
      $("app-logo").hidden = false;
      $("app-letter").hidden = true;
    } else {
      $("app-logo").hidden = true;
      $("app-letter").hidden = false;
    }
    const req = scanned.requester || {};
    $("req-ip").textContent = req.ip || "—";
    const place = req.location;
    $("req-place").textContent = place
      ? [place.city, place.region, place.country].filter(Boolean).join(", ")
      : "—";
    $("req-browser").textContent = req.description || describeAgent(req.user_agent || "");
    const mismatch = scanned.mismatch;
    $("mismatch").hidden = !mismatch;
    $("mismatch-message").textContent = mismatch ? mismatch.message : "";
    showChoices((scanned.match && scanned.match.choices) || null);
    $("req-ua").textContent = req.user_agent || "";
    $("req-time").textContent = req.created_at ? new Date(req.created_at).toLocaleString() : "—";

    $("as-avatar").src = avatarSrc(user);
    $("as-label").textContent = user.label + (user.nickname && user.nickname !== user.label ? " · " + user.nickname : "");
    $("nickname").value = user.nickname || user.label;
    $("avatar-preview").src = avatarSrc(user);
    $("phone-input").value = "";
    $("confirm-button").disabled = false;
    show("screen-confirm");
    startCountdown(Date.parse(scanned.expires_at));
  }

  // The match step: three numbers, one of them on the computer's screen.
  function showChoices(choices) {
    tapped = null;
    const box = $("match-choices");
    box.replaceChildren();
    $("match").hidden = !choices;
    for (const n of choices || []) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "match-choice";
      b.textContent = String(n);
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", () => {
        tapped = n;
        for (const other of box.children) other.setAttribute("aria-pressed", String(other === b));
      });
      box.appendChild(b);
    }
  }

  // "Chrome 126 · Linux" from a User-Agent string; the full string is shown beneath.
  function describeAgent(ua) {
    const browsers = [
      [/Edg\/(\d+)/, "Edge"],
      [/OPR\/(\d+)/, "Opera"],
      [/Firefox\/(\d+)/, "Firefox"],
      [/(?:HeadlessChrome|Chrome|Chromium)\/(\d+)/, "Chrome"],
      [/Version\/(\d+).*Safari/, "Safari"],
      [/curl\/([\d.]+)/, "curl"],
    ];
    const systems = [
      [/Windows NT/, "Windows"],
      [/Android/, "Android"],
      [/iPhone|iPad/, "iOS"],
      [/Mac OS X/, "macOS"],
      [/CrOS/, "ChromeOS"],
      [/Linux/, "Linux"],
    ];
    let browser = null;
    for (const [re, name] of browsers) {
      const m = ua.match(re);
      if (m) {
        browser = name + " " + m[1];
        break;
      }
    }
    const system = (systems.find(([re]) => re.test(ua)) || [])[1];
    return [browser, system].filter(Boolean).join(" · ") || (ua ? ua.slice(0, 40) : "—");
  }

  function startCountdown(expiresAt) {
    stopCountdown();
    const tick = () => {
      const left = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
      const el = $("req-expires");
      el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      el.classList.toggle("expiring", left <= 20);
      if (left === 0) {
        stopCountdown();
        $("confirm-button").disabled = true;
        localError("二维码已过期，请在电脑上刷新", "The code has expired — get a new one on the computer");
      }
    };
    tick();
    countdown = setInterval(tick, 500);
  }

  function stopCountdown() {
    if (countdown) clearInterval(countdown);
    countdown = null;
  }

  async function confirm() {
    const user = currentUser();
    const body = {};
    if (scanned.match) {
      if (tapped == null) {
        localError("请先点选电脑上显示的数字", "Tap the number the computer shows first");
        return;
      }
      body.match_number = tapped;
    }
    const profile = {};
    const nickname = $("nickname").value.trim();
    if (nickname) profile.nickname = nickname;
    if ($("share-avatar").checked) {
      profile.avatar_url = user.avatar_url || (await uploadAvatar(user));
    }
    if (Object.keys(profile).length) body.profile = profile;

    const phone = $("phone-input").value.replace(/[\s-]/g, "");
    if (phone) {
      if (!/^\d{5,15}$/.test(phone)) {
        localError("手机号应为 5–15 位数字", "A phone number is 5–15 digits");
        return;
      }
      const country = $("country-code").value.replace(/\D/g, "") || "86";
      const sim = await api("POST", "/_dev/wechat/_sim/phone_code", {
        appid,
        openid: user.openid,
        phone,
        country_code: country,
      });
      body.phone = { code: sim.code };
    }

    let confirmed;
    try {
      confirmed = await authed("POST", "/api/mp/v1/qrcodes/" + encodeURIComponent(random) + "/confirm", body);
    } catch (e) {
      if (e.code !== "wrong_match_number") throw e;
      done(
        "cancel",
        bi("数字不对，登录已取消", "Wrong number: login cancelled"),
        bi("你点选的数字与电脑上显示的不同。如果不是你本人在电脑前发起的登录，可能有人在冒用。", "The number you tapped is not the one on the computer. If you did not start this login yourself, someone else may have.")
      );
      return;
    }
    await refreshMe(user);
    if (confirmed && confirmed.phone_skipped) {
      localError("微信暂时无法提供手机号，已在不提供手机号的情况下登录", "WeChat could not share the phone number; signed in without it");
    }
    done(
      "ok",
      bi("登录成功", "Login confirmed"),
      bi("电脑上的 " + (scanned.app.name || "") + " 已登录，可以回到电脑了。", (scanned.app.name || "The site") + " is now signed in on the computer.")
    );
  }

  async function cancel() {
    await authed("POST", "/api/mp/v1/qrcodes/" + encodeURIComponent(random) + "/cancel");
    done("cancel", bi("已取消登录", "Login cancelled"), bi("电脑上的登录请求已被拒绝。", "The computer's login request was refused."));
  }

  async function refreshMe(user) {
    try {
      absorb(user, await authed("GET", "/api/mp/v1/me"));
      saveUsers();
    } catch (_) {
      /* the confirmation stands; the list just shows older details */
    }
  }

  function done(kind, title, text) {
    $("done-icon").dataset.kind = kind;
    $("done-title").replaceChildren(title);
    $("done-text").replaceChildren(text);
    random = null;
    scanned = null;
    offered = null;
    $("random-input").value = "";
    $("offered").hidden = true;
    history.replaceState(null, "", location.pathname);
    renderUsers();
    show("screen-done");
  }

  // ---- wiring ----

  $("new-user").addEventListener("click", (ev) => busy(ev.currentTarget, createUser));

  $("scan-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("scan-button"), scan);
  });

  $("confirm-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("confirm-button"), confirm);
  });

  $("cancel-button").addEventListener("click", (ev) => busy(ev.currentTarget, cancel));

  $("done-back").addEventListener("click", () => {
    hideError();
    show("screen-home");
    offerLatest();
  });

  window.addEventListener("focus", offerLatest);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") offerLatest();
  });

  $("error-close").addEventListener("click", hideError);

  // The demo site reuses this window for each new code.
  window.addEventListener("pageshow", () => {
    const r = launchRandom();
    if (r) $("random-input").value = r;
  });

  if (currentOpenid && !currentUser()) currentOpenid = users.length ? users[0].openid : null;
  renderUsers();
  const r = launchRandom();
  if (r) {
    $("random-input").value = r;
    $("scan-button").focus();
  } else {
    offerLatest();
  }
})();
