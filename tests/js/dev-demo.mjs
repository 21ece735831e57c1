// The dev demo site as a newcomer uses it, in headless Chromium: the phone simulator opened on
// its own is offered the demo page's code; a first login greets without "welcome back" and
// leaves the result's heading clear of the sticky bar; a cancel stops the countdown, a new
// code restarts it; a second login says "welcome back"; "Try the hosted login" goes through
// the hosted page to /_dev/callback, which shows the ID token; with JavaScript off the page
// says what to do. Screenshots go to the artifacts folder.
import { launch, artifact, must } from "./lib/browser.mjs";

const { SCANGATE_URL } = process.env;
must(SCANGATE_URL, "SCANGATE_URL is set");

async function shot(page, name, fullPage = false) {
  if (process.env.SCREENSHOTS !== "0") await page.screenshot({ path: artifact(name), fullPage });
}

async function open(context, path, lang, size) {
  const page = await context.newPage();
  await page.addInitScript((l) => localStorage.setItem("scangate.lang", l), lang);
  await page.setViewportSize(size);
  await page.goto(SCANGATE_URL + path);
  return page;
}

// The random the demo page shows, once its code is pending and the image has loaded.
async function demoCode(demo) {
  await demo.waitForSelector('#qr-box[data-state="pending"]');
  await demo.waitForFunction(() => {
    const img = document.getElementById("qr-img");
    return img.complete && img.naturalWidth > 0;
  });
  const url = await demo.textContent("#scan-url");
  return url.slice(url.lastIndexOf("/") + 1);
}

// The phone simulator offers `random` (asked again when its window comes into view).
async function offered(phone, random) {
  await phone.evaluate(() => window.dispatchEvent(new Event("focus")));
  await phone.waitForFunction((r) => document.getElementById("random-input").value === r, random);
}

async function scanOnPhone(phone) {
  await phone.click("#scan-button");
  await phone.waitForSelector("#screen-confirm:not([hidden])");
}

// The demo app has the match step on: the phone taps the number the demo page shows.
async function tapShown(demo, phone) {
  await demo.waitForSelector("#match-number:not([hidden])");
  const number = (await demo.textContent("#match-number")).trim();
  await phone.click(`.match-choice:text-is("${number}")`);
}

async function finishOnPhone(phone, button) {
  await phone.click(button);
  await phone.waitForSelector("#screen-done:not([hidden])");
  await phone.click("#done-back");
}

const visible = (page, selector) => page.isVisible(selector);

const context = await launch();
try {
  const size = { width: 1280, height: 900 };
  const demo = await open(context, "/_dev/", "en", size);
  let random = await demoCode(demo);
  await shot(demo, "dev-demo-en-1280.png");

  // Opened on its own, the phone simulator offers the code the demo page shows.
  const phone = await open(context, "/_dev/phone", "en", { width: 375, height: 812 });
  await phone.waitForFunction((r) => document.getElementById("random-input").value === r, random);
  must(await visible(phone, "#offered"), "the phone says where the code came from");
  await shot(phone, "dev-phone-en-375-offered.png");
  console.log("offered: ok");

  // A first login: a new user shows as "WeChat user" until the profile is filled in at confirm.
  await scanOnPhone(phone);
  await demo.waitForSelector('#qr-box[data-state="scanned"]');
  const scanner = await demo.innerText("#scanner-name");
  must(scanner === "WeChat user", "a new user is shown as WeChat user: " + scanner);
  await shot(demo, "dev-demo-en-1280-scanned.png");
  await tapShown(demo, phone);
  await shot(demo, "dev-demo-en-1280-match.png");
  await shot(phone, "dev-phone-en-375-confirm.png");
  await finishOnPhone(phone, "#confirm-button");
  await demo.waitForSelector("#welcome:not([hidden])");
  const greeting = await demo.innerText("#welcome-greeting");
  must(greeting.trim() === "Welcome,", "a first login is no welcome back: " + greeting);
  // The page scrolls to the result; its heading must end up below the sticky bar.
  await demo.waitForFunction(() => {
    const bar = document.querySelector(".shop-bar").getBoundingClientRect();
    const title = document.getElementById("result-title").getBoundingClientRect();
    return window.scrollY > 0 && title.top >= bar.bottom && title.top < bar.bottom + 60;
  });
  await shot(demo, "dev-demo-en-1280-signed-in.png");
  await shot(demo, "dev-demo-en-1280-signed-in-page.png", true);
  console.log("first login: ok");

  // A cancel: the countdown gives way to the outcome, and a new code restarts it.
  await demo.click("#sign-out");
  random = await demoCode(demo);
  await offered(phone, random);
  await scanOnPhone(phone);
  await finishOnPhone(phone, "#cancel-button");
  await demo.waitForSelector('#qr-box[data-state="final"]');
  must(await demo.$eval("#countdown", (el) => el.classList.contains("done")), "the countdown stopped");
  must(!(await visible(demo, "#countdown-text")), "no stopped clock is shown after a cancel");
  await shot(demo, "dev-demo-en-1280-cancelled.png");
  await demo.click("#renew");
  random = await demoCode(demo);
  must(await visible(demo, "#countdown-text"), "the countdown is back for the new code");
  const shown = await demo.textContent("#countdown-text");
  await demo.waitForFunction((t) => document.getElementById("countdown-text").textContent !== t, shown);
  console.log("cancelled: ok");

  // A second login by the same user: now it is "welcome back", with the profile given.
  await offered(phone, random);
  await scanOnPhone(phone);
  await demo.waitForSelector('#qr-box[data-state="scanned"]');
  const again = await demo.innerText("#scanner-name");
  must(again !== "WeChat user", "the filled-in nickname is shown at scan: " + again);
  await tapShown(demo, phone);
  await finishOnPhone(phone, "#confirm-button");
  await demo.waitForSelector("#welcome:not([hidden])");
  const back = await demo.innerText("#welcome-greeting");
  must(back.trim() === "Welcome back,", "a second login is welcome back: " + back);
  console.log("second login: ok");

  // Try the hosted login: PKCE, the hosted page, the callback swapping the code.
  await demo.click("#hosted-login");
  await demo.waitForURL("**/oidc/auth?**");
  const params = new URL(demo.url()).searchParams;
  must(params.get("code_challenge_method") === "S256", "PKCE S256");
  must(/^[A-Za-z0-9_-]{43}$/.test(params.get("code_challenge")), "an S256 challenge");
  await demo.waitForSelector("#qr[data-random]");
  const hosted = await demo.getAttribute("#qr", "data-random");
  await offered(phone, hosted);
  await shot(demo, "dev-hosted-en-1280.png");
  await scanOnPhone(phone);
  await tapShown(demo, phone);
  await finishOnPhone(phone, "#confirm-button");
  await demo.waitForURL("**/_dev/callback**");
  await demo.waitForSelector('#hosted[data-result="signed-in"]');
  must((await demo.$$('#hosted-checks li[data-ok="false"]')).length === 0, "every check passed");
  const payload = JSON.parse(await demo.textContent("#hosted-payload"));
  must(payload.aud === "demo" && payload.nonce && payload.sub, "the ID token's claims: " + JSON.stringify(payload));
  await shot(demo, "dev-callback-en-1280.png", true);
  console.log("hosted login: ok");

  // Chinese on a phone-sized screen.
  const zh = await open(context, "/_dev/", "zh", { width: 375, height: 812 });
  await demoCode(zh);
  await shot(zh, "dev-demo-zh-CN-375.png", true);
  const zhPhone = await open(context, "/_dev/phone", "zh", { width: 375, height: 812 });
  await zhPhone.waitForSelector("#offered:not([hidden])");
  await shot(zhPhone, "dev-phone-zh-CN-375.png");
} finally {
  await context.close();
}

// With JavaScript off the page says what to do instead of spinning.
const noScript = await launch({ javaScriptEnabled: false });
try {
  const page = await noScript.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(SCANGATE_URL + "/_dev/");
  must(await page.isVisible("#noscript"), "the no-script note is shown");
  must(!(await page.isVisible("#qr-box")), "no spinner that never stops");
  must((await page.innerText("#noscript")).includes("JavaScript is off"), "the note says why, in English too");
  await shot(page, "dev-demo-noscript-1280.png");
  console.log("no script: ok");
} finally {
  await noScript.close();
}
