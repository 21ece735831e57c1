// The admin console in headless Chromium: sign in by keyboard alone, register a Mini Program,
// create an app with a logo upload while the live preview follows the colour, check a
// near-miss callback URL, then log in on the new app through its hosted page ("Try it"; the
// phone is played over HTTP) with no restart, and find the user, the login in the audit log
// and one more "confirmed" in the dashboard's funnel. Last, edit the app by keyboard alone and
// take screenshots of every page in zh-CN and English at 1280×800 and 375×667, failing on
// anything wider than the screen.
import { launch, artifact, must } from "./lib/browser.mjs";
import { phone } from "./lib/phone.mjs";

const { SCANGATE_URL, SIM_URL, RP_URL, USERNAME, PASSWORD, LOGO_PATH, API_KEY, APPID, APPSECRET } = process.env;
must(SCANGATE_URL && SIM_URL && RP_URL && USERNAME && PASSWORD && LOGO_PATH && API_KEY && APPID && APPSECRET, "environment is set");
const CLIENT_ID = "console-shop";
const CALLBACK = `${RP_URL}/callback`;

async function api(path) {
  const res = await fetch(`${SCANGATE_URL}/api/admin/v1${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  must(res.ok, `GET ${path}: ${res.status}`);
  return res.json();
}

/** Presses Tab until `selector` has the focus; fails after `max` presses. */
async function tabTo(page, selector, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${selector}`);
}

async function noOverflow(page, name) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  must(scroll <= inner, `${name}: the page is ${scroll}px wide on a ${inner}px screen`);
}

async function confirmedToday(page) {
  await page.goto(`${SCANGATE_URL}/admin`);
  const value = await page.getAttribute(`[data-chart="${CLIENT_ID}-24h"]`, "data-confirmed");
  return Number(value);
}

const context = await launch();
try {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 800 });

  // Sign in, by keyboard alone.
  await page.goto(`${SCANGATE_URL}/admin/apps?lang=en`);
  must(page.url().startsWith(`${SCANGATE_URL}/admin/sign-in?next=`), "anonymous: sent to sign in: " + page.url());
  must(await page.evaluate(() => document.activeElement.id === "username"), "the username field has the focus");
  await page.keyboard.type(USERNAME);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${SCANGATE_URL}/admin/apps?lang=en`);
  must((await page.textContent("h1")).includes("Apps"), "signed in, back where it was");
  console.log("keyboard sign-in: ok");

  // A Mini Program.
  await page.goto(`${SCANGATE_URL}/admin/miniprograms/new`);
  await page.fill("#appid", APPID);
  await page.fill("#secret", APPSECRET);
  await page.fill("#name", "Console 小程序");
  await page.click("main .btn-primary");
  await page.waitForURL(`${SCANGATE_URL}/admin/miniprograms/${APPID}?saved=1`);
  console.log("mini program: ok");

  // An app with a logo; the preview follows the colour before anything is saved.
  await page.goto(`${SCANGATE_URL}/admin/apps/new`);
  const fingerprint = () => page.getAttribute("#preview-image", "data-fingerprint");
  const first = await fingerprint();
  await page.fill("#client_id", CLIENT_ID);
  await page.fill("#name", "Console shop 控制台商城");
  await page.selectOption("#miniprogram", APPID);
  await page.fill("#redirect_uris", CALLBACK);
  await page.setInputFiles("#logo_file", LOGO_PATH);
  await page.waitForFunction((f) => document.querySelector("#preview-image").dataset.fingerprint !== f, first);
  const withLogo = await fingerprint();
  must((await page.textContent("#preview-note")).includes("30 %"), "the note speaks of error correction H");
  await page.fill("#qr_foreground", "#1a3a8a");
  await page.waitForFunction((f) => document.querySelector("#preview-image").dataset.fingerprint !== f, withLogo);
  console.log(`live preview: ${first} → ${withLogo} → ${await fingerprint()}`);
  await page.screenshot({ path: artifact("console-app-preview-en-1280.png"), fullPage: true });
  await page.click('button[value="save"]');
  await page.waitForSelector("#client-secret");
  must((await page.textContent("#client-secret")).trim().length >= 40, "the client secret is shown once");
  must(await page.isVisible('[data-copy="client-secret"]'), "with a copy button");
  await page.screenshot({ path: artifact("console-app-created-en-1280.png"), fullPage: true });
  console.log("app created: ok");

  // The callback checker, on a near miss.
  await page.fill("#callback-url", CALLBACK + "/");
  await page.click('#callback-form button[type="submit"]');
  await page.waitForSelector("#callback-result");
  const reason = await page.textContent("#callback-result");
  must(reason.includes("trailing slash differs"), "the reason: " + reason);
  await page.screenshot({ path: artifact("console-app-callback-en-1280.png"), fullPage: true });
  console.log("callback checker: " + reason.trim());

  // A whole login on the new app, from "Try it", with no restart.
  const before = await confirmedToday(page);
  await page.goto(`${SCANGATE_URL}/admin/apps/${CLIENT_ID}`);
  const [hosted] = await Promise.all([context.waitForEvent("page"), page.click("#try-it")]);
  await hosted.waitForSelector("#qr[data-random]");
  const random = await hosted.getAttribute("#qr", "data-random");
  const openid = "o-console-" + Date.now();
  const mp = phone({ scangate: SCANGATE_URL, simulator: SIM_URL, appid: APPID });
  await mp.login(openid, { nickname: "控制台用户" });
  const shown = await mp.scan(random);
  // A new app has the match step: the phone taps the number the hosted page shows.
  await hosted.waitForSelector("#login[data-match]", { timeout: 10000 });
  const number = Number(await hosted.textContent("#match-number"));
  must(shown.match && shown.match.choices.includes(number), `the phone offers ${number}`);
  await mp.confirm(random, { match_number: number });
  await hosted.waitForURL(`${CALLBACK}?**`, { timeout: 15000 });
  must(new URL(hosted.url()).searchParams.get("code"), "the app got a code: " + hosted.url());
  await hosted.close();
  console.log("login through the hosted page: ok");

  const users = await api(`/pools/default/users?q=${encodeURIComponent(openid)}`);
  must(users.items.length === 1, "the user is listed: " + JSON.stringify(users));
  const usersPage = await page.goto(`${SCANGATE_URL}/admin/users?q=${encodeURIComponent(openid)}`);
  must(usersPage.status() === 200, `the users page answers ${usersPage.status()}`);
  must((await page.textContent("main")).includes("控制台用户"), "the users page lists the user");
  const audit = await api(`/audit?subject=${CLIENT_ID}`);
  must(audit.items.some((e) => e.action.startsWith("login.")), "the login is audited: " + JSON.stringify(audit.items.map((e) => e.action)));
  const created = audit.items.find((e) => e.action === "admin.app.create");
  must(created && created.actor === `admin:${USERNAME}`, "the creation is audited with the admin's name");
  const after = await confirmedToday(page);
  must(after === before + 1, `one more confirmed in the funnel: ${before} → ${after}`);
  console.log(`funnel: ${before} → ${after}; user and audit: ok`);

  // Edit the app by keyboard alone.
  await page.goto(`${SCANGATE_URL}/admin/apps/${CLIENT_ID}`);
  await page.keyboard.press("Tab");
  await tabTo(page, "#name");
  await page.keyboard.press("Control+A");
  await page.keyboard.type("Console shop 2");
  await tabTo(page, 'button[value="save"]');
  await page.keyboard.press("Enter");
  await page.waitForSelector(".alert-ok");
  must((await page.inputValue("#name")) === "Console shop 2", "saved by keyboard");
  console.log("keyboard app edit: ok");

  // Screenshots of every page, both languages, both sizes.
  const pages = [
    ["dashboard", "/admin"],
    ["apps", "/admin/apps"],
    ["app-new", "/admin/apps/new"],
    ["app", `/admin/apps/${CLIENT_ID}`],
    ["app-callback", `/admin/apps/${CLIENT_ID}/callback?url=${encodeURIComponent(CALLBACK + "/")}`],
    ["app-config", "/admin/apps/web"],
    ["app-delete", `/admin/apps/${CLIENT_ID}/delete`],
    ["miniprograms", "/admin/miniprograms"],
    ["miniprogram-new", "/admin/miniprograms/new"],
    ["miniprogram", `/admin/miniprograms/${APPID}`],
    ["pools", "/admin/pools"],
    ["pool", "/admin/pools/default"],
    ["pool-new", "/admin/pools/new"],
  ];
  const sizes = [{ width: 1280, height: 800 }, { width: 375, height: 667 }];
  for (const lang of ["zh", "en"]) {
    await page.goto(`${SCANGATE_URL}/admin?lang=${lang}`);
    for (const size of sizes) {
      await page.setViewportSize(size);
      for (const [name, path] of pages) {
        const res = await page.goto(SCANGATE_URL + path);
        must(res.status() === 200, `${path}: ${res.status()}`);
        must((await page.getAttribute("html", "lang")) === (lang === "zh" ? "zh-CN" : "en"), `${path} in ${lang}`);
        await noOverflow(page, `${name} ${lang} ${size.width}`);
        await page.screenshot({ path: artifact(`console-${name}-${lang}-${size.width}.png`), fullPage: true });
      }
    }
  }
  // The sign-in page, signed out (and the error beside the field).
  const out = await launch();
  try {
    const signIn = await out.newPage();
    for (const lang of ["zh", "en"]) {
      for (const size of sizes) {
        await signIn.setViewportSize(size);
        await signIn.goto(`${SCANGATE_URL}/admin/sign-in?lang=${lang}`);
        await noOverflow(signIn, `sign-in ${lang} ${size.width}`);
        await signIn.screenshot({ path: artifact(`console-sign-in-${lang}-${size.width}.png`), fullPage: true });
      }
    }
    await signIn.fill("#username", USERNAME);
    await signIn.click('button[type="submit"]');
    await signIn.waitForSelector("#password-error");
    await signIn.screenshot({ path: artifact("console-sign-in-error-en-375.png"), fullPage: true });
  } finally {
    await out.close();
  }
  console.log("screenshots: ok");
} finally {
  await context.close();
}
