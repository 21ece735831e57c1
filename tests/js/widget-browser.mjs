// static/scangate.js on a page of another origin, in Debian's Chromium: a whole login in
// zh-CN and en with a screenshot of each state; cancel and retry; the long-poll fallback when
// the browser has no EventSource; expiry, which waits while the page is hidden and renews by
// itself while it is visible.
import { launch, artifact, must } from "./lib/browser.mjs";
import { AVATAR_PNG, phone } from "./lib/phone.mjs";

const { SCANGATE, SIMULATOR, MP_APPID, APP_ID, SHORT_APP_ID, MATCH_APP_ID, SITE, BACKEND } = process.env;
const mp = phone({ scangate: SCANGATE, simulator: SIMULATOR, appid: MP_APPID });
must(new URL(SITE).origin !== new URL(SCANGATE).origin, "the site is another origin");
const TIMEOUT = { timeout: 20000 };
const suffix = BACKEND ? `-${BACKEND}` : "";

const context = await launch();
const problems = [];

async function open(query, init, before) {
  const page = await context.newPage();
  if (before) before(page);
  await page.setViewportSize({ width: 360, height: 420 });
  watchErrors(page);
  if (init) await page.addInitScript(init);
  await page.goto(`${SITE}/widget.html?${query}`);
  // The widget's stylesheet is in.
  await page.waitForFunction(() => {
    const sg = document.querySelector(".sg");
    return sg && getComputedStyle(sg).display === "inline-flex";
  }, null, TIMEOUT);
  return page;
}

// Script errors, and any failed response but the site's missing favicon.
function watchErrors(page) {
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && !r.url().endsWith("/favicon.ico") && problems.push(`${r.status()} ${r.url()}`));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && problems.push(`console: ${m.text()}`));
}

const state = (page, s) =>
  page.waitForSelector(`.sg[data-state="${s}"]`, TIMEOUT);
const random = (page) => page.getAttribute(".sg", "data-random");
const events = (page) => page.evaluate(() => window.site.events);

async function qrShown(page) {
  await state(page, "pending");
  await page.waitForFunction(() => {
    const img = document.querySelector(".sg-qr");
    return img.complete && img.naturalWidth >= 256;
  }, null, TIMEOUT);
}

async function shot(page, name) {
  await page.locator(".sg").screenshot({ path: artifact(`widget-${name}${suffix}.png`) });
}

async function setVisible(page, visible) {
  await page.evaluate((v) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (v ? "visible" : "hidden") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => !v });
    document.dispatchEvent(new Event("visibilitychange"));
  }, visible);
}

const advance = (secs) => fetch(`${SITE}/_test/advance?secs=${secs}`, { method: "POST" });

try {
  // ---- a whole login, in each language ----
  for (const [lang, nickname, texts] of [
    ["zh-CN", "小明", { pending: "微信扫码登录", scanned: "请在手机上确认登录", success: "登录成功" }],
    ["en", "Alice", { pending: "Sign in with WeChat", scanned: "Confirm the sign-in on your phone", success: "Signed in" }],
  ]) {
    const requests = [];
    const page = await open(`app=${APP_ID}&lang=${lang}`, null, (p) => p.on("request", (r) => requests.push(r.url())));
    await qrShown(page);
    must((await page.textContent(".sg")).includes(texts.pending), `${lang} pending text`);
    must(/\d:\d\d/.test(await page.textContent(".sg-timer")), "a countdown");
    await shot(page, `${lang}-pending`);
    const r = await random(page);

    await mp.login(`o-widget-${lang}`, { nickname, avatar: AVATAR_PNG });
    await mp.scan(r);
    await state(page, "scanned");
    must((await page.textContent(".sg-name")) === nickname, "the scanner's nickname");
    must((await page.textContent(".sg")).includes(texts.scanned), `${lang} scanned text`);
    await page.waitForFunction(() => document.querySelector(".sg-avatar").naturalWidth > 0, null, TIMEOUT);
    await shot(page, `${lang}-scanned`);

    await mp.confirm(r);
    await state(page, "success");
    must((await page.textContent(".sg")).includes(texts.success), `${lang} success text`);
    await shot(page, `${lang}-success`);
    const result = await page.evaluate(() => window.site.result);
    must(result.user.nickname === nickname, `the exchange result: ${JSON.stringify(result)}`);
    must(result.token_type === "Bearer" && result.id_token.split(".").length === 3, "tokens");
    must(
      JSON.stringify(await events(page)) === JSON.stringify([`scanned:${nickname}`, "success"]),
      `callbacks: ${await events(page)}`,
    );
    // Followed by Server-Sent Events alone: one stream, no polling.
    must(requests.filter((u) => u.endsWith(`/api/v1/qrcodes/${r}/events`)).length === 1, "one event stream");
    must(!requests.some((u) => u.includes(`/api/v1/qrcodes/${r}?`)), `no polling: ${requests.join("\n")}`);
    await page.close();
  }

  // ---- cancel, then retry ----
  {
    const page = await open(`app=${APP_ID}&lang=zh-CN`);
    await qrShown(page);
    const first = await random(page);
    await mp.scan(first);
    await state(page, "scanned");
    await mp.cancel(first);
    await state(page, "cancelled");
    must((await page.textContent(".sg")).includes("你已在手机上取消此次登录"), "cancelled text");
    await shot(page, "zh-CN-cancelled");
    await page.click(".sg-btn");
    await qrShown(page);
    must((await random(page)) !== first, "retry shows a new code");
    must((await events(page)).includes("cancelled"), "onCancel");
    await page.close();
  }

  // ---- the cookie lost (third-party cookies blocked): the bind token still binds ----
  {
    const page = await open(`app=${APP_ID}&lang=en`);
    await qrShown(page);
    const r = await random(page);
    await context.clearCookies();
    await mp.scan(r);
    await state(page, "scanned");
    await mp.confirm(r);
    await state(page, "success");
    must((await page.evaluate(() => window.site.result.user.nickname)) === "Alice", "exchanged by bind token");
    await page.close();
  }

  // ---- no EventSource: long-poll ----
  {
    const longPolls = [];
    const page = await open(
      `app=${APP_ID}&lang=en`,
      () => {
        delete window.EventSource;
      },
      (p) => p.on("request", (req) => req.url().includes("wait=25") && longPolls.push(req.url())),
    );
    await qrShown(page);
    const r = await random(page);
    await mp.scan(r);
    await state(page, "scanned");
    await mp.confirm(r);
    await state(page, "success");
    must(longPolls.length >= 2, `followed by long-poll: ${longPolls.length}`);
    must(!longPolls.some((u) => !u.startsWith(`${SCANGATE}/api/v1/qrcodes/${r}?wait=25`)), "long-poll URLs");
    must((await page.evaluate(() => window.site.result.user.nickname)) === "Alice", "exchanged");
    await page.close();
  }

  // ---- expiry: waits while hidden, renews while visible ----
  for (const lang of ["zh-CN", "en"]) {
    const page = await open(`app=${SHORT_APP_ID}&lang=${lang}`);
    await qrShown(page);
    const first = await random(page);
    await setVisible(page, false);
    await advance(10);
    await state(page, "expired");
    await shot(page, `${lang}-expired`);
    must((await page.textContent(".sg")).includes(lang === "en" ? "QR code expired" : "二维码已过期"), "expired text");
    must((await random(page)) === first, "no new code while hidden");
    await setVisible(page, true);
    await qrShown(page);
    const second = await random(page);
    must(second !== first, "a new code once visible");
    // Visible all along: renewed without a click.
    await advance(10);
    await page.waitForFunction((r) => document.querySelector(".sg").dataset.random !== r, second, TIMEOUT);
    await qrShown(page);
    const expiries = (await events(page)).filter((e) => e === "expired").length;
    must(expiries === 2, `onExpired twice: ${await events(page)}`);
    await page.close();
  }

  // ---- the match step: the number shown large, tapped on the phone; a wrong tap cancels ----
  for (const [lang, size, right] of [
    ["en", { width: 1280, height: 800 }, true],
    ["zh-CN", { width: 375, height: 667 }, false],
  ]) {
    const page = await open(`app=${MATCH_APP_ID}&lang=${lang}`);
    await page.setViewportSize(size);
    await qrShown(page);
    const r = await random(page);
    await mp.login(`o-match-${lang}`, { nickname: lang === "en" ? "Alice" : "小明", avatar: AVATAR_PNG });
    const shown = await mp.scan(r);
    await page.waitForSelector(".sg[data-match]", TIMEOUT);
    const number = Number(await page.textContent(".sg-number"));
    must(shown.match.choices.includes(number), `the phone offers ${number}: ${shown.match.choices}`);
    const line = lang === "en" ? "Tap this number on your phone" : "在手机上点选这个数字";
    must((await page.textContent(".sg")).includes(line), `${lang}: the line to tap it`);
    await page.waitForFunction(() => document.querySelector(".sg-avatar").naturalWidth > 0, null, TIMEOUT);
    await page.screenshot({ path: artifact(`widget-match-${size.width}x${size.height}${suffix}.png`) });
    if (right) {
      await mp.confirm(r, { match_number: number });
      await state(page, "success");
    } else {
      const wrong = shown.match.choices.find((n) => n !== number);
      const refused = await mp.refused(r, { match_number: wrong });
      must(refused.status === 403 && refused.body.error === "wrong_match_number", JSON.stringify(refused));
      await state(page, "cancelled");
      must((await page.textContent(".sg")).includes("手机上点选的数字不对"), "why it was cancelled");
      must((await page.getAttribute(".sg", "data-match")) === null, "the number is gone");
      await page.screenshot({ path: artifact(`widget-wrong-number-${size.width}x${size.height}${suffix}.png`) });
    }
    await page.close();
  }

  must(problems.length === 0, `no page errors:\n${problems.join("\n")}`);
} finally {
  await context.close();
}
console.log("ok");
