// Runs the Mini Program under `miniprogram/` in Node: its pages rendered by
// miniprogram-simulate (WeChat's own component test kit, on jsdom), with a `wx` whose
// wx.request and wx.uploadFile go over real HTTP to ScanGate and whose wx.login gets codes from
// the WeChat simulator. Navigation opens the next page the way WeChat would, with its query
// as onLoad's options.
import "global-jsdom/register";
import { readFileSync } from "node:fs";
import { readFile as readFileAsync } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { must } from "./browser.mjs";

/** A page's WXSS as the browser's CSS: 750 rpx = 375 px, classes under the page's prefix. */
function css(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (_) {
    return "";
  }
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(-?\d+(?:\.\d+)?)rpx/g, (_, n) => `${Number(n) / 2}px`)
    .replace(/([^{}]+)\{/g, (_, sel) => `${sel.replace(/\.([A-Za-z_][\w-]*)/g, ".main--$1").replace(/(?<![\w.-])page\b/g, "body")}{`);
}

// How WeChat lays out its built-in components, near enough for a screenshot.
const BUILTINS = `wx-view, wx-button, wx-image, wx-input { display: block; }
wx-text { display: inline; white-space: pre-wrap; }
wx-view > wx-text { display: block; }
wx-image { width: 60px; height: 60px; background: #e5e6eb; border-radius: 12px; margin: 0 auto; }
wx-input { min-height: 1.5em; }
wx-input::after { content: attr(placeholder); color: #bbbfc4; }
wx-button { text-align: center; box-sizing: border-box; }
body { margin: 0; font-family: "Noto Sans CJK SC", sans-serif; }`;

// j-component builds its events with the global constructors: jsdom's, not Node's own.
for (const name of ["Event", "CustomEvent", "EventTarget"]) globalThis[name] = window[name];

const require = createRequire(import.meta.url);
export const MP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../miniprogram");

/** One phone: a WeChat user (openid), its storage, its language, and what its scanner reads. */
export class Phone {
  constructor({ openid, language = "en", loginCode = null, ip = null }) {
    this.openid = openid;
    // The phone's network address, as the proxy in front of ScanGate reports it.
    this.ip = ip;
    // A code WeChat never issued, to see the Mini Program meet WeChat's refusal.
    this.loginCode = loginCode;
    this.language = language;
    this.storage = new Map();
    this.scans = [];
    this.sessions = 0;
  }
}

/** The `wx` of the Mini Program and the page stack, for one ScanGate and one simulator. */
export function miniprogram({ scangate, simulator, appid }) {
  let phone = null;
  let inflight = 0;
  const stack = [];
  const navigations = [];
  const seen = []; // every body ScanGate answered, to check no session_key ever arrives

  const config = require(path.join(MP_DIR, "config.js"));
  config.scangateUrl = scangate;

  const forwarded = () => (phone && phone.ip ? { "x-forwarded-for": phone.ip } : {});

  function track(promise) {
    inflight += 1;
    return promise.finally(() => {
      inflight -= 1;
    });
  }

  function call(handler, ok, res) {
    const cb = ok ? handler.success : handler.fail;
    if (cb) cb(res);
    if (handler.complete) handler.complete(res);
  }

  async function fetchWx(url, init) {
    const res = await fetch(url, init);
    const text = await res.text();
    seen.push(text);
    return { statusCode: res.status, header: Object.fromEntries(res.headers), text };
  }

  const wx = {
    getAccountInfoSync: () => ({ miniProgram: { appId: appid, envVersion: "develop", version: "" } }),
    getAppBaseInfo: () => ({ language: phone.language, SDKVersion: "3.4.0" }),
    getSystemInfoSync: () => ({ language: phone.language, platform: "devtools" }),
    getStorageSync: (key) => (phone.storage.has(key) ? phone.storage.get(key) : ""),
    setStorageSync: (key, value) => void phone.storage.set(key, value),
    removeStorageSync: (key) => void phone.storage.delete(key),
    setNavigationBarTitle: () => {},

    login(handler) {
      track(
        (async () => {
          const res = await fetch(new URL("_sim/login", simulator), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ appid, openid: phone.openid }),
          });
          const body = await res.json();
          must(res.ok, `the simulator mints a wx.login code: ${JSON.stringify(body)}`);
          phone.sessions += 1;
          call(handler, true, { code: phone.loginCode || body.code, errMsg: "login:ok" });
        })(),
      );
    },

    request(handler) {
      const method = (handler.method || "GET").toUpperCase();
      const headers = { ...(handler.header || {}), ...forwarded() };
      let body;
      if (handler.data !== undefined && method !== "GET") body = JSON.stringify(handler.data);
      else delete headers["content-type"];
      track(
        fetchWx(handler.url, { method, headers, body }).then(
          ({ statusCode, header, text }) => {
            let data = text;
            try {
              data = text ? JSON.parse(text) : "";
            } catch (_) {
              /* WeChat hands over the text when it is not JSON */
            }
            call(handler, true, { statusCode, header, data, errMsg: "request:ok" });
          },
          (e) => call(handler, false, { errMsg: `request:fail ${e.message}` }),
        ),
      );
    },

    uploadFile(handler) {
      track(
        (async () => {
          let bytes;
          try {
            bytes = await readFileAsync(handler.filePath);
          } catch (e) {
            call(handler, false, { errMsg: `uploadFile:fail ${e.message}` });
            return;
          }
          const form = new FormData();
          for (const [k, v] of Object.entries(handler.formData || {})) form.append(k, v);
          form.append(handler.name, new Blob([bytes]), path.basename(handler.filePath));
          try {
            const { statusCode, header, text } = await fetchWx(handler.url, {
              method: "POST",
              headers: { ...(handler.header || {}), ...forwarded() },
              body: form,
            });
            // wx.uploadFile gives the body as a string.
            call(handler, true, { statusCode, header, data: text, errMsg: "uploadFile:ok" });
          } catch (e) {
            call(handler, false, { errMsg: `uploadFile:fail ${e.message}` });
          }
        })(),
      );
    },

    scanCode(handler) {
      const next = phone.scans.shift();
      Promise.resolve().then(() =>
        next ? call(handler, true, { errMsg: "scanCode:ok", ...next }) : call(handler, false, { errMsg: "scanCode:fail cancel" }),
      );
    },

    navigateTo: (o) => navigate("navigateTo", o),
    redirectTo: (o) => navigate("redirectTo", o),
    reLaunch: (o) => navigate("reLaunch", o),
  };
  global.wx = wx;
  const simulate = require("miniprogram-simulate");
  // miniprogram-simulate merges its own stand-ins under ours.
  const live = global.wx;

  function parse(url) {
    const [route, query = ""] = url.replace(/^\//, "").split("?");
    const options = {};
    for (const pair of query.split("&").filter(Boolean)) {
      const [k, v = ""] = pair.split("=");
      // WeChat hands a page its query as written (still URL-encoded).
      options[k] = v;
    }
    return { route, options };
  }

  async function open(url) {
    const { route, options } = parse(url);
    const id = simulate.load(path.join(MP_DIR, route), { compiler: "simulate", rootPath: MP_DIR });
    const page = simulate.render(id);
    page.attach(document.createElement("parent-wrapper"));
    const entry = { route, options, page };
    stack.push(entry);
    await track(Promise.resolve(page.instance.onLoad(options)));
    return entry;
  }

  function navigate(kind, o) {
    navigations.push({ kind, url: o.url });
    if (kind === "redirectTo" && stack.length) stack.pop().page.detach();
    if (kind === "reLaunch") while (stack.length) stack.pop().page.detach();
    track(open(o.url));
    if (o.success) o.success({ errMsg: `${kind}:ok` });
  }

  /** Resolves once every request, upload, login and page load has finished. */
  async function idle() {
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setImmediate(r));
      quiet = inflight === 0 ? quiet + 1 : 0;
    }
  }

  return {
    wx: live,
    config,
    /** A module of the Mini Program, for checking its pure logic directly. */
    require: (file) => require(path.join(MP_DIR, file)),
    open: async (url) => {
      await open(url);
      await idle();
    },
    navigations,
    seen,
    /** Makes `p` the phone the Mini Program runs on. */
    use(p) {
      phone = p;
    },
    /** Starts the Mini Program as WeChat does for a code: the entry page with `options`. */
    async launch(p, options) {
      phone = p;
      while (stack.length) stack.pop().page.detach();
      await open(`pages/scan/scan?${Object.entries(options || {}).map(([k, v]) => `${k}=${v}`).join("&")}`);
      await idle();
      return this.current();
    },
    /** Starts the Mini Program at `url` (a page and its query), as a URL Link or URL Scheme
     * opens it. */
    async launchAt(p, url) {
      phone = p;
      while (stack.length) stack.pop().page.detach();
      await open(url);
      await idle();
      return this.current();
    },
    current() {
      return stack[stack.length - 1];
    },
    /** Taps (or fires `event` with `detail` on) the first node matching `selector`. */
    async fire(selector, event = "tap", detail = {}) {
      const { page } = this.current();
      const node = page.querySelector(selector);
      must(node, `${this.current().route} has ${selector}`);
      node.dispatchEvent(event, { detail });
      await idle();
    },
    /** The text of `selector` on the current page, or null when it is not shown. */
    text(selector) {
      const node = this.current().page.querySelector(selector);
      return node ? node.dom.textContent.trim() : null;
    },
    /** The current page as WeChat would draw it, 375 px wide, as HTML for a screenshot. */
    html() {
      const { route, page } = this.current();
      const style = BUILTINS + css(path.join(MP_DIR, "app.wxss")) + css(path.join(MP_DIR, `${route}.wxss`));
      return `<!doctype html><meta charset="utf-8"><style>${style}</style><body>${page.dom.outerHTML}</body>`;
    },
    all(selector) {
      return this.current().page.querySelectorAll(selector);
    },
    idle,
  };
}
