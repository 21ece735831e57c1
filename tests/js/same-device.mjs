// "Open in WeChat" on a phone's browser, in Debian's Chromium with an iPhone's user agent and a
// 375 px screen. The hosted login page shows the link WeChat made for its code (printed as
// `link <random> <url>` for the harness to compare with the simulator's record) beside the QR
// code, and opens it in a new tab; once the phone confirms, that page goes on to the callback,
// while a second browser with the same code gets neither the link nor the ticket. Without
// JavaScript the link is there all the same. A desktop browser gets no button. Then the widget
// on a phone shows the link too (`widget-link <random> <url>`), and on a desktop does not ask
// for one. Last, with WeChat refusing links (a spent quota), the hosted page shows its QR code
// and says why. Screenshots at 375 px in en and zh-CN.
//
// Env: SCANGATE, SIMULATOR, MP_APPID, APP_ID (a bound app of MP_APPID), SITE (another origin
// serving tests/js/pages), CALLBACK (a redirect_uri of APP_ID on SITE), BACKEND.
import { launch, artifact, must } from "./lib/browser.mjs";
import { phone } from "./lib/phone.mjs";

const { SCANGATE, SIMULATOR, MP_APPID, APP_ID, SITE, CALLBACK, BACKEND } = process.env;
must(SCANGATE && SIMULATOR && MP_APPID && APP_ID && SITE && CALLBACK, "the environment is set");

const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const DESKTOP =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const HANDSET = {
  userAgent: IPHONE,
  viewport: { width: 375, height: 812 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};
const TIMEOUT = { timeout: 20000 };
const suffix = BACKEND ? `-${BACKEND}` : "";
const OPEN = { en: "Open in WeChat", "zh-CN": "在微信中打开" };
const TITLE = { en: "Sign in with WeChat", "zh-CN": "使用微信登录" };

const mp = phone({ scangate: SCANGATE, simulator: SIMULATOR, appid: MP_APPID });

function authUrl(lang) {
  const url = new URL(`${SCANGATE}/oidc/auth`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: APP_ID,
    redirect_uri: CALLBACK,
    scope: "openid",
    state: `st-${lang}`,
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method: "S256",
    ui_locales: lang,
    // Each page asks for a scan, though this browser signed in before.
    prompt: "login",
  }).toString();
  return url.href;
}

async function qrShown(page, selector) {
  await page.waitForFunction(
    (s) => {
      const img = document.querySelector(s);
      return img && img.complete && img.naturalWidth > 0;
    },
    selector,
    TIMEOUT,
  );
}

const handset = await launch(HANDSET);
const stranger = await launch(HANDSET);
const noscript = await launch({ ...HANDSET, javaScriptEnabled: false });
const desktop = await launch({ userAgent: DESKTOP, viewport: { width: 1280, height: 800 } });
try {
  // WeChat's landing page of a URL Link is on the internet; the phone's new tab gets a stand-in.
  await handset.route("https://wxaurl.cn/**", (route) =>
    route.fulfill({ contentType: "text/html", body: "<p>WeChat</p>" }),
  );
  await mp.login("o-same-device", { nickname: "小明" });

  // ---- the hosted page on a phone, in each language ----
  for (const lang of ["en", "zh-CN"]) {
    const page = await handset.newPage();
    await page.goto(authUrl(lang));
    const button = page.locator("#open-in-wechat");
    await button.waitFor({ state: "visible", ...TIMEOUT });
    must((await button.innerText()).trim() === OPEN[lang], `${lang}: the button says ${await button.innerText()}`);
    must((await page.innerText(".login-title")).trim() === TITLE[lang], `${lang}: the title`);
    const href = await button.getAttribute("href");
    const random = await page.getAttribute("#qr", "data-random");
    console.log(`link ${random} ${href}`);
    await qrShown(page, ".qr-code");
    const box = await button.boundingBox();
    must(box.x >= 0 && box.x + box.width <= 375 && box.height >= 44, `the button fits the screen: ${JSON.stringify(box)}`);
    await page.screenshot({ path: artifact(`same-device-hosted-${lang}-375${suffix}.png`), fullPage: true });

    // A tap opens WeChat's link in a new tab; this page stays and follows its code.
    const [tab] = await Promise.all([handset.waitForEvent("page"), button.click()]);
    await tab.waitForLoadState();
    must(tab.url() === href, `the new tab opened the link: ${tab.url()}`);
    await tab.close();

    // A second browser with the same code gets no link.
    const other = await stranger.newPage();
    const asked = await other.goto(`${SCANGATE}/api/v1/qrcodes/${random}/open_link`);
    must(asked.status() === 403, `another browser is refused the link: ${asked.status()}`);

    // The phone side: the Mini Program opened at the code scans and confirms it.
    await mp.scan(random);
    await mp.confirm(random);

    // Nor the ticket, once confirmed.
    const seen = await other.goto(`${SCANGATE}/api/v1/qrcodes/${random}`);
    const view = await seen.json();
    must(view.status === "confirmed" && view.ticket === undefined, `another browser sees no ticket: ${JSON.stringify(view)}`);
    await other.close();

    // This page goes on, as after a scan.
    await page.waitForURL(`${CALLBACK}**`, TIMEOUT);
    const back = new URL(page.url());
    must(back.searchParams.get("code") && back.searchParams.get("state") === `st-${lang}`, `at the callback: ${page.url()}`);
    console.log(`hosted ${lang}: ok`);
    await page.close();
  }

  // ---- without JavaScript: a plain link ----
  {
    const page = await noscript.newPage();
    await page.goto(authUrl("zh-CN"));
    const href = await page.getAttribute("#open-in-wechat", "href");
    const random = await page.getAttribute("#qr", "data-random");
    console.log(`link ${random} ${href}`);
    must(await page.isVisible("#open-in-wechat"), "the link is shown without JavaScript");
    await page.screenshot({ path: artifact(`same-device-hosted-noscript-zh-CN-375${suffix}.png`), fullPage: true });
    console.log("noscript: ok");
    await page.close();
  }

  // ---- a desktop browser: the QR code alone ----
  {
    const page = await desktop.newPage();
    await page.goto(authUrl("en"));
    await page.waitForSelector("#qr[data-random]", TIMEOUT);
    must((await page.locator("#open-in-wechat").count()) === 0, "no button on a desktop");
    console.log("desktop: ok");
    await page.close();
  }

  // ---- the widget on a phone ----
  for (const lang of ["zh-CN", "en"]) {
    const page = await handset.newPage();
    await page.goto(`${SITE}/widget.html?app=${APP_ID}&lang=${lang}`);
    await page.waitForSelector(".sg-open:not([hidden])", TIMEOUT);
    const link = page.locator(".sg-open-link");
    must((await link.innerText()).trim() === OPEN[lang], `${lang}: the widget's button says ${await link.innerText()}`);
    const href = await link.getAttribute("href");
    const random = await page.getAttribute(".sg", "data-random");
    console.log(`widget-link ${random} ${href}`);
    await qrShown(page, ".sg-qr");
    await page.locator(".sg").screenshot({ path: artifact(`same-device-widget-${lang}-375${suffix}.png`) });
    await mp.scan(random);
    await mp.confirm(random);
    await page.waitForSelector('.sg[data-state="success"]', TIMEOUT);
    must(await page.isHidden(".sg-open"), "the button is gone once signed in");
    console.log(`widget ${lang}: ok`);
    await page.close();
  }

  // ---- the widget on a desktop: no link asked for ----
  {
    const page = await desktop.newPage();
    const asked = [];
    page.on("request", (r) => r.url().endsWith("/open_link") && asked.push(r.url()));
    await page.goto(`${SITE}/widget.html?app=${APP_ID}&lang=en`);
    await page.waitForSelector('.sg[data-state="pending"]', TIMEOUT);
    await qrShown(page, ".sg-qr");
    must(asked.length === 0 && (await page.isHidden(".sg-open")), `no link on a desktop: ${asked}`);
    console.log("widget desktop: ok");
    await page.close();
  }
  // ---- WeChat refuses (its daily quota is spent): the QR code alone, and why ----
  // One refusal: it pauses links of the Mini Program, so the second page does not ask.
  const fail = await fetch(new URL("_sim/fail_next", SIMULATOR), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ path: "/wxa/generate_urllink", errcode: 45009 }),
  });
  must(fail.ok, `the simulator fails the next link: ${fail.status}`);
  for (const lang of ["en", "zh-CN"]) {
    const page = await handset.newPage();
    const res = await page.goto(authUrl(lang));
    must(res.status() === 200, `the page still answers: ${res.status()}`);
    await qrShown(page, ".qr-code");
    must(await page.isVisible("#open-in-wechat-unavailable"), "the page says the link is not available");
    must((await page.locator("#open-in-wechat").count()) === 0, "no button without a link");
    await page.screenshot({ path: artifact(`same-device-hosted-unavailable-${lang}-375${suffix}.png`), fullPage: true });
    console.log(`unavailable ${lang}: ok`);
    await page.close();
  }
} finally {
  await Promise.all([handset.close(), stranger.close(), noscript.close(), desktop.close()]);
}
console.log("ok");
