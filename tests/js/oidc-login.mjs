// A relying party sends a real browser to the hosted login page; the phone (driven over HTTP
// with a Mini Program session token) scans and confirms; the browser must land on the relying
// party's callback, which swapped the code for tokens. Screenshots of the page in Chinese and
// English, on a desktop and a phone-sized screen, go to the artifacts folder. Last, logout:
// the relying party's logout URL without an ID token only asks (with scripts blocked, the form
// still works); "Stay signed in" keeps the session; "Sign out" ends it and returns to the
// relying party.
import { launch, artifact, must } from "./lib/browser.mjs";

const { RP_URL, SCANGATE_URL, PHONE_TOKEN } = process.env;
must(RP_URL && SCANGATE_URL && PHONE_TOKEN, "RP_URL, SCANGATE_URL and PHONE_TOKEN are set");

async function shot(page, name) {
  if (process.env.SCREENSHOTS !== "0") await page.screenshot({ path: artifact(name) });
}

async function phone(path, body) {
  const res = await fetch(SCANGATE_URL + path, {
    method: "POST",
    headers: { authorization: "Bearer " + PHONE_TOKEN, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  must(res.ok, `phone ${path}: HTTP ${res.status} ${await res.text()}`);
}

// Confirms with the number the page shows (the match step).
async function confirmShown(page, random) {
  await page.waitForSelector("#login[data-match]", { timeout: 10000 });
  const number = Number(await page.textContent("#match-number"));
  must(number >= 10 && number <= 99, "a two-digit number: " + number);
  await phone(`/api/mp/v1/qrcodes/${random}/confirm`, { match_number: number });
}

async function qrShown(page) {
  await page.waitForSelector("#qr[data-random]");
  await page.waitForFunction(() => {
    const img = document.querySelector(".qr-code");
    return img && img.complete && img.naturalWidth > 0;
  });
  return page.getAttribute("#qr", "data-random");
}

const context = await launch();
try {
  for (const [lang, size] of [
    ["zh-CN", { width: 1000, height: 760 }],
    ["en", { width: 1000, height: 760 }],
    ["zh-CN", { width: 390, height: 780 }],
  ]) {
    const tag = `${lang}-${size.width}`;
    const page = await context.newPage();
    await page.setViewportSize(size);
    await page.goto(`${RP_URL}/login?lang=${lang}&prompt=login`);
    must(page.url().startsWith(SCANGATE_URL + "/oidc/auth?"), "redirected to the hosted page: " + page.url());
    const random = await qrShown(page);
    must(/^[A-Za-z0-9_-]{22,32}$/.test(random), "data-random is a QR random: " + random);
    const title = await page.textContent(".login-title");
    must(lang === "en" ? title.includes("Scan to sign in") : title.includes("微信扫码登录"), `${tag}: title in ${lang}: ${title}`);
    await shot(page, `hosted-login-${tag}.png`);

    await phone(`/api/mp/v1/qrcodes/${random}/scan`);
    await page.waitForSelector('#login[data-state="scanned"]', { timeout: 10000 });
    must((await page.textContent("#scanner-name")) === "小明", "the scanner's name is shown");
    await shot(page, `hosted-login-${tag}-scanned.png`);

    await confirmShown(page, random);
    await page.waitForURL(RP_URL + "/callback**", { timeout: 10000 });
    const result = await page.textContent("#signed-in");
    must(result.includes("Signed in as"), "the relying party got tokens: " + result);
    console.log(`${tag}: ${result}`);
    await page.close();
  }

  // The match step at a desktop's and a small phone's size: the number large, the line to tap
  // it; a wrong tap cancels the code and the page says why.
  for (const [lang, size, right] of [
    ["en", { width: 1280, height: 800 }, true],
    ["zh-CN", { width: 375, height: 667 }, false],
  ]) {
    const tag = `${size.width}x${size.height}`;
    const page = await context.newPage();
    await page.setViewportSize(size);
    await page.goto(`${RP_URL}/login?lang=${lang}&prompt=login`);
    const random = await qrShown(page);
    const res = await fetch(`${SCANGATE_URL}/api/mp/v1/qrcodes/${random}/scan`, {
      method: "POST",
      headers: { authorization: "Bearer " + PHONE_TOKEN },
    });
    const shown = await res.json();
    await page.waitForSelector("#login[data-match]", { timeout: 10000 });
    const number = Number(await page.textContent("#match-number"));
    must(shown.match.choices.includes(number), `the phone offers ${number}: ${shown.match.choices}`);
    must(await page.isVisible("#match-number"), "the number is visible");
    const line = lang === "en" ? "Tap this number on your phone" : "在手机上点选这个数字";
    must((await page.textContent(".cover-scanned")).includes(line), `${tag}: the line to tap it`);
    await shot(page, `hosted-login-match-${tag}.png`);
    if (right) {
      await phone(`/api/mp/v1/qrcodes/${random}/confirm`, { match_number: number });
      await page.waitForURL(RP_URL + "/callback**", { timeout: 10000 });
      console.log(`match ${tag}: ${await page.textContent("#signed-in")}`);
    } else {
      const wrong = shown.match.choices.find((n) => n !== number);
      const refused = await fetch(`${SCANGATE_URL}/api/mp/v1/qrcodes/${random}/confirm`, {
        method: "POST",
        headers: { authorization: "Bearer " + PHONE_TOKEN, "content-type": "application/json" },
        body: JSON.stringify({ match_number: wrong }),
      });
      must(refused.status === 403, "a wrong number is refused: " + refused.status);
      await page.waitForSelector('#login[data-state="cancelled"][data-cancel-reason="wrong_match_number"]', { timeout: 10000 });
      must(await page.isVisible(".reason-wrong_match_number"), "the page says why");
      await shot(page, `hosted-login-wrong-number-${tag}.png`);
      console.log("wrong number: ok");
    }
    await page.close();
  }

  // Single sign-on: without prompt=login the browser goes straight back with a code.
  const page = await context.newPage();
  await page.goto(`${RP_URL}/login?lang=en`);
  await page.waitForURL(RP_URL + "/callback**", { timeout: 10000 });
  must((await page.textContent("#signed-in")).includes("Signed in as"), "signed in without a scan");
  console.log("sso: ok");

  // Cancelling on the phone shows it on the page.
  const cancelled = await context.newPage();
  await cancelled.setViewportSize({ width: 1000, height: 760 });
  await cancelled.goto(`${RP_URL}/login?lang=zh-CN&prompt=login`);
  const random = await qrShown(cancelled);
  await phone(`/api/mp/v1/qrcodes/${random}/scan`);
  await phone(`/api/mp/v1/qrcodes/${random}/cancel`);
  await cancelled.waitForSelector('#login[data-state="cancelled"]', { timeout: 10000 });
  await shot(cancelled, "hosted-login-zh-CN-cancelled.png");
  console.log("cancelled: ok");

  // A near-miss redirect URI: an error page that says why, and no redirect.
  const refused = await context.newPage();
  await refused.setViewportSize({ width: 1000, height: 760 });
  const near = encodeURIComponent(RP_URL + "/callback/");
  const res = await refused.goto(
    `${SCANGATE_URL}/oidc/auth?response_type=code&client_id=shop&scope=openid&ui_locales=en&redirect_uri=${near}`,
  );
  must(res.status() === 400 && refused.url().startsWith(SCANGATE_URL), "the error stays on ScanGate");
  must((await refused.textContent("main")).includes("trailing slash differs"), "the page says why");
  await shot(refused, "hosted-login-en-refused.png");
  console.log("refused: ok");

  const logoutUrl = (lang) =>
    `${SCANGATE_URL}/oidc/session/end?client_id=shop&state=bye&ui_locales=${lang}` +
    `&post_logout_redirect_uri=${encodeURIComponent(RP_URL + "/")}`;
  async function asked(lang, width) {
    const ask = await context.newPage();
    await ask.setViewportSize({ width, height: 760 });
    await ask.route("**/*.js", (route) => route.abort());
    await ask.goto(logoutUrl(lang));
    const title = await ask.innerText("h1");
    must(lang === "en" ? title === "Sign out of ScanGate?" : title === "退出 ScanGate 登录？", `${lang}: ${title}`);
    must((await ask.innerText("main")).includes("Demo shop 演示商城"), "the app's name is shown");
    must(await ask.isVisible('button[value="logout"]'), "a Sign out button");
    must(await ask.isVisible('button[value="stay"]'), "a Stay signed in button");
    return ask;
  }
  for (const [lang, width] of [["zh-CN", 1280], ["en", 1280], ["zh-CN", 375], ["en", 375]]) {
    const ask = await asked(lang, width);
    await shot(ask, `logout-${lang}-${width}.png`);
    await ask.close();
  }
  const stay = await asked("en", 1280);
  await stay.click('button[value="stay"]');
  must((await stay.innerText("h1")) === "Still signed in", "stayed: " + (await stay.innerText("main")));
  await stay.goto(`${RP_URL}/login?lang=en`);
  await stay.waitForURL(RP_URL + "/callback**", { timeout: 10000 });
  must((await stay.textContent("#signed-in")).includes("Signed in as"), "still signed in after staying");
  await stay.close();
  console.log("logout asked: ok");

  const out = await asked("zh-CN", 375);
  await out.click('button[value="logout"]');
  await out.waitForURL(RP_URL + "/?state=bye", { timeout: 10000 });
  must((await out.textContent("#signed-out")) === "Signed out", "back at the relying party");
  await out.goto(`${RP_URL}/login?lang=en`);
  await qrShown(out);
  must(out.url().startsWith(SCANGATE_URL + "/oidc/auth?"), "a new login needs a scan: " + out.url());
  await out.close();
  console.log("logout: ok");
} finally {
  await context.close();
}
