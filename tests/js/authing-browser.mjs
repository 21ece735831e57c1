// The SDK's browser build on a page of another origin, `appHost` = ScanGate:
// wxqrcode.startScanning draws the code, the phone scans and confirms, onSuccess gets a ticket,
// and the ticket is exchanged from the page (the binding cookie travels with the SDK's
// credentialed requests). A second browser following the same code never sees the ticket.
import { launch, artifact, must } from "./lib/browser.mjs";
import { AVATAR_PNG, phone } from "./lib/phone.mjs";

const { SCANGATE, SIMULATOR, MP_APPID, APP_ID, SITE } = process.env;
const mp = phone({ scangate: SCANGATE, simulator: SIMULATOR, appid: MP_APPID });
must(new URL(SITE).origin !== new URL(SCANGATE).origin, "the site is another origin");

// Script errors, and any failed response but the site's missing favicon.
function watch(page, problems) {
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && !r.url().endsWith("/favicon.ico") && problems.push(`${r.status()} ${r.url()}`));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && problems.push(`console: ${m.text()}`));
}

const context = await launch();
const other = await launch();
try {
  const problems = [];
  const page = await context.newPage();
  watch(page, problems);
  await page.goto(`${SITE}/authing.html?app=${APP_ID}`);
  await page.waitForFunction(() => window.sdk.random, null, { timeout: 15000 });
  const random = await page.evaluate(() => window.sdk.random);
  // The QR was drawn on a canvas and read back as a data URL: the image response carried CORS
  // for this origin (a tainted canvas would have thrown and been shown as is).
  await page.waitForSelector('#authing__qrcode-wrapper img[src^="data:image/png"]');

  await mp.login("o-sdk-browser", { nickname: "浏览器 Browser", avatar: AVATAR_PNG });
  await mp.scan(random);
  await page.waitForFunction(() => window.sdk.scanned, null, { timeout: 15000 });
  const scanned = await page.evaluate(() => window.sdk.scanned);
  must(scanned.nickname === "浏览器 Browser", `onScanned: ${JSON.stringify(scanned)}`);

  await mp.confirm(random);
  await page.waitForFunction(() => window.sdk.ticket, null, { timeout: 15000 });
  const ticket = await page.evaluate(() => window.sdk.ticket);
  must(typeof ticket === "string" && ticket.length > 16, `onSuccess ticket: ${ticket}`);
  await page.locator("#qrcode").screenshot({ path: artifact("authing-sdk-success.png") });

  // Another browser (its own cookie jar) on the same site follows the same code.
  const spy = await other.newPage();
  watch(spy, problems);
  await spy.goto(`${SITE}/authing.html?app=${APP_ID}&idle`);
  const seen = await spy.evaluate((r) => window.sdk.client.wxqrcode.checkStatus(r), random);
  must(seen.status === 2 && !seen.ticket, `the other browser sees no ticket: ${JSON.stringify(seen)}`);
  const stolen = await spy.evaluate(
    (t) => window.sdk.client.wxqrcode.exchangeUserInfo(t).then(() => "redeemed", (e) => JSON.stringify(e)),
    ticket,
  );
  must(stolen !== "redeemed" && stolen.includes("403"), `the other browser cannot redeem it: ${stolen}`);

  const user = await page.evaluate((t) => window.sdk.client.wxqrcode.exchangeUserInfo(t), ticket);
  must(user.nickname === "浏览器 Browser" && typeof user.token === "string", `user: ${JSON.stringify(user)}`);
  const errors = await page.evaluate(() => window.sdk.errors);
  must(errors.length === 0, `no SDK errors: ${errors}`);
  // The spy's refused exchange logs nothing either: refusals travel in the envelope.
  must(problems.length === 0, `no page errors: ${problems.join("\n")}`);
  console.log(`user ${user.id}`);
} finally {
  await context.close();
  await other.close();
}
console.log("ok");
