// The reference Mini Program (`miniprogram/`), its own pages and code, against a real ScanGate:
// opened from an ordinary QR code, a Mini Program code and the scan button; a login with the
// match-number tap, profile and phone; the recent logins and "This wasn't me"; a decline; a
// device's request approved and declined; the screens for each refusal, in en and zh-CN; and
// opened from the link WeChat made for a phone's browser ("Open in WeChat").
//
// Env: SCANGATE, SIMULATOR, MP_APPID (the Mini Program), APP_ID (a bound app of it),
// OTHER_APP_ID (an app of another Mini Program), DEVICE_CLIENT_ID (a public client with the
// device grant), CONTROL (advances ScanGate's clock), PART ("login", "qrljacking", "refusals",
// "device" or "link"). Prints `user <id>` per login and `ok` at the end.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { artifact, launch, must } from "./lib/browser.mjs";
import { miniprogram, Phone } from "./lib/miniprogram.mjs";

const { SCANGATE, SIMULATOR, MP_APPID, APP_ID, OTHER_APP_ID, DEVICE_CLIENT_ID, CONTROL, PART } = process.env;
const CHROME_ON_WINDOWS =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

const mp = miniprogram({ scangate: SCANGATE, simulator: SIMULATOR, appid: MP_APPID });
const show = (v) => JSON.stringify(v);
const shots = [];
/** Keeps the current page to be drawn by Chromium at the end (when SCREENSHOTS=1). */
const snap = (name) => shots.push([name, mp.html()]);

// ---- the PC's side, over the public API ----

async function pcCode(appId = APP_ID, { ip, ua = CHROME_ON_WINDOWS } = {}) {
  const headers = { "content-type": "application/json", "user-agent": ua };
  if (ip) headers["x-forwarded-for"] = ip;
  const res = await fetch(`${SCANGATE}/api/v1/qrcodes`, {
    method: "POST",
    headers,
    body: JSON.stringify({ app_id: appId }),
  });
  must(res.status === 201, `create a code: ${res.status}`);
  return res.json();
}

async function pcStatus(qr) {
  const res = await fetch(`${SCANGATE}/api/v1/qrcodes/${qr.random}`, {
    headers: { "x-scangate-bind": qr.bind_token },
  });
  must(res.ok, `status: ${res.status}`);
  return res.json();
}

async function advance(secs) {
  const res = await fetch(`${CONTROL}/advance?secs=${secs}`, { method: "POST" });
  must(res.ok, "the clock moves");
}

const q = (qr) => encodeURIComponent(qr.scan_url);

/** A one-pixel GIF, as chooseAvatar leaves in a temporary file. */
async function avatarFile() {
  const dir = await mkdtemp(path.join(tmpdir(), "scangate-mp-"));
  const file = path.join(dir, "tmp_avatar.gif");
  await writeFile(file, Buffer.from("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", "base64"));
  return file;
}

async function phoneCode(openid, phone) {
  const res = await fetch(new URL("_sim/phone_code", SIMULATOR), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ appid: MP_APPID, openid, phone }),
  });
  return (await res.json()).code;
}

/** The number the PC shows, when the app asks for the match step. */
function tapMatch(status, { wrong = false } = {}) {
  const buttons = mp.all(".choice");
  must(buttons.length === 3, `three numbers to choose from: ${buttons.length}`);
  const shown = buttons.map((b) => Number(b.dom.textContent.trim()));
  must(shown.includes(status.match_number), `the PC's ${status.match_number} is among ${show(shown)}`);
  must(mp.text("#confirm") === null, "the numbers are the confirm buttons");
  const pick = buttons.find((b) => (Number(b.dom.textContent.trim()) === status.match_number) !== wrong);
  pick.dispatchEvent("tap");
}

async function exchange(qr, ticket) {
  const res = await fetch(`${SCANGATE}/api/v1/qrcodes/exchange`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-scangate-bind": qr.bind_token },
    body: JSON.stringify({ ticket }),
  });
  must(res.ok, `exchange: ${res.status}`);
  return res.json();
}

// ---- a login, start to end ----

async function login() {
  const alice = new Phone({ openid: "o-mp-alice" });
  const qr = await pcCode();

  // An ordinary QR code: WeChat opens the entry page with the URL-encoded scan_url as `q`.
  await mp.launch(alice, { q: q(qr) });
  must(mp.current().route === "pages/confirm/confirm", `the confirm page opens: ${mp.current().route}`);
  must(mp.text("#app-name") === "App web", `the app's name: ${mp.text("#app-name")}`);
  must(mp.text("#who-ip") === "127.0.0.1", `the requester's IP: ${mp.text("#who-ip")}`);
  const device = mp.text("#who-device");
  must(/Chrome/.test(device) && /Windows/.test(device), `the requester's browser and OS: ${device}`);
  must(/shown/.test(mp.text("#who-shown") || ""), `when the code was shown: ${mp.text("#who-shown")}`);
  must(mp.text("#decline") === "Decline", "Decline is offered beside Confirm");

  snap("confirm");
  const status = await pcStatus(qr);
  must(status.status === "scanned", `the PC sees the scan: ${show(status)}`);

  // The profile the way WeChat allows it today: chooseAvatar, a nickname input, getPhoneNumber.
  await mp.fire("#avatar", "chooseavatar", { avatarUrl: await avatarFile() });
  must(mp.text("#avatar-note") === null, `the avatar uploads: ${mp.text("#avatar-note")}`);
  await mp.fire("#nickname", "input", { value: "Alice 小程序" });
  await mp.fire("#phone", "getphonenumber", { code: await phoneCode(alice.openid, "13800138000"), errMsg: "getPhoneNumber:ok" });
  must(mp.text("#phone-note") === "Phone number shared", `the phone: ${mp.text("#phone-note")}`);

  // The match step: the number the PC shows is one of three big buttons.
  must(typeof status.match_number === "number", `the PC shows a match number: ${show(status)}`);
  tapMatch(status);
  await mp.idle();
  must(mp.current().route === "pages/result/result", `the result page: ${mp.current().route} ${show(mp.current().options)}`);
  must(mp.text("#title") === "Signed in", `signed in: ${mp.text("#title")}`);
  must(mp.text("#message").includes("App web"), `to the app: ${mp.text("#message")}`);
  snap("result");

  const done = await pcStatus(qr);
  must(done.status === "confirmed" && done.ticket, `the PC gets its ticket: ${show(done)}`);
  const { user } = await exchange(qr, done.ticket);
  must(user.nickname === "Alice 小程序", `the nickname typed: ${show(user)}`);
  must(/\/media\/avatars\//.test(user.avatar_url || user.picture || ""), `the avatar chosen: ${show(user)}`);
  console.log(`user ${user.id}`);

  // The recent logins, with "This wasn't me".
  must(mp.text("#logins") !== null, "the recent logins are listed");
  {
    const reports = mp.all(".report");
    must(reports.length >= 1, "the login just made is listed");
    must(mp.text(".login").includes("127.0.0.1"), `with who asked: ${mp.text(".login")}`);
    reports[0].dispatchEvent("tap");
    await mp.idle();
    must(mp.all(".reported").length === 1, "the reported login says so");
    must(mp.text(".reported") === "Reported; that sign-in was ended", mp.text(".reported"));
    console.log("reported");
  }

  // A token ScanGate no longer honours is renewed through wx.login, once.
  const sessions = alice.sessions;
  alice.storage.set("scangate_token", "no-longer-valid");
  const again = await pcCode();
  await mp.launch(alice, { scene: again.random });
  must(mp.current().route === "pages/confirm/confirm", `a refused token is renewed: ${mp.current().route}`);
  must(alice.sessions === sessions + 1, `one new session: ${alice.sessions - sessions}`);
  must(alice.storage.get("scangate_token") !== "no-longer-valid", "the new token is kept");

  // Declined from a Mini Program code (`scene`): the PC is told, and gets no ticket.
  await mp.fire("#decline");
  must(mp.current().route === "pages/result/result", "declined");
  must(mp.text("#title") === "Declined", mp.text("#title"));
  const declined = await pcStatus(again);
  must(declined.status === "cancelled" && !declined.ticket, `the PC sees the decline: ${show(declined)}`);

  // The match step refuses a wrong number at once, and says why.
  const third = await pcCode();
  await mp.launch(alice, { q: q(third) });
  const shown = await pcStatus(third);
  tapMatch(shown, { wrong: true });
  await mp.idle();
  must(mp.current().options.kind === "wrong_match", `a wrong number: ${show(mp.current().options)}`);
  must(mp.text("#title") === "Wrong number: sign-in cancelled", mp.text("#title"));
  const after = await pcStatus(third);
  must(after.status === "cancelled" && !after.ticket, `the code is cancelled: ${show(after)}`);
  console.log("wrong match refused");
}

// ---- the refusals ----

async function screen(expectKind, title) {
  const { route, options } = mp.current();
  must(route === "pages/error/error", `an error page: ${route} ${show(options)}`);
  must(options.kind === expectKind, `${expectKind}: ${show(options)}`);
  must(mp.text("#title") === title, `title "${mp.text("#title")}" is "${title}"`);
  must((mp.text("#message") || "").length > 10, "with what to do");
}

async function refusals() {
  const bob = new Phone({ openid: "o-mp-bob" });
  const carol = new Phone({ openid: "o-mp-carol", language: "zh_CN" });

  // The scan button: a code of this ScanGate opens it; anything else is refused on the spot.
  const qr = await pcCode();
  bob.scans.push({ result: "https://example.com/not-a-login", scanType: "QR_CODE" });
  await mp.launch(bob, {});
  must(mp.current().route === "pages/scan/scan", "the entry page without a code");
  await mp.fire("#scan");
  must(mp.text("#notice") === "This is not a sign-in code of this Mini Program.", `${mp.text("#notice")}`);
  bob.scans.push({ result: `${SCANGATE}/q/${qr.random}`, scanType: "QR_CODE" });
  await mp.fire("#scan");
  must(mp.current().route === "pages/confirm/confirm", `the scanned code opens: ${mp.current().route}`);

  // Scanned by another: already used.
  await mp.launch(carol, { scene: qr.random });
  await screen("used", "二维码已被使用");

  // Expired.
  const late = await pcCode();
  await advance(200);
  await mp.launch(bob, { q: q(late) });
  await screen("expired", "The code has expired");
  await mp.launch(carol, { scene: late.random });
  await screen("expired", "二维码已过期");
  snap("expired-zh");

  // Another Mini Program's code.
  const foreign = await pcCode(OTHER_APP_ID);
  await mp.launch(bob, { q: q(foreign) });
  await screen("other_program", "Not for this Mini Program");

  // An unknown code.
  await mp.launch(bob, { scene: "AAAAAAAAAAAAAAAAAAAAAA" });
  await screen("not_found", "Unknown code");

  // WeChat refusing the wx.login code (expired, used): the WeChat screen.
  const dave = new Phone({ openid: "o-mp-dave", loginCode: "a-code-wechat-never-issued" });
  await mp.launch(dave, { scene: (await pcCode()).random });
  await screen("wechat", "WeChat is not answering");

  // ScanGate out of reach: the network screen.
  mp.config.scangateUrl = "http://127.0.0.1:9";
  await mp.launch(bob, { scene: (await pcCode()).random });
  await screen("network", "Network error");
  mp.config.scangateUrl = SCANGATE;

  // The mapping of the rest, which a live ScanGate cannot be made to answer on demand.
  const describe = mp.require("lib/describe.js");
  const cases = [
    [{ status: 429, code: "rate_limited" }, "scan", "rate_limited"],
    [{ status: 502, code: "wechat_error" }, "confirm", "wechat"],
    [{ status: 503, code: "unavailable" }, "scan", "unavailable"],
    [{ status: 403, code: "wrong_match_number" }, "confirm", "wrong_match"],
    [{ status: 403, code: "forbidden" }, "confirm", "used"],
  ];
  for (const [err, during, kind] of cases) {
    must(describe.errorKind(err, during) === kind, `${show(err)} during ${during} is ${kind}`);
  }
  await mp.launch(bob, {});
  await mp.open("pages/error/error?kind=rate_limited&retry_after=42");
  await screen("rate_limited", "Too many attempts");
  must(mp.text("#message") === "Try again in 42 s.", mp.text("#message"));
  must(describe.shownAgo({ shown_seconds_ago: 75 }) === "shown 75 s ago", describe.shownAgo({ shown_seconds_ago: 75 }));
  must(describe.shownAgo({ shown_seconds_ago: 300 }) === "shown 5 min ago", "minutes");
  const at = { location: { city: "Shanghai", region: "Shanghai", country: "China", country_code: "CN" } };
  must(describe.place(at) === "Shanghai, China", describe.place(at));
  const { STRINGS } = mp.require("lib/i18n.js");
  const missing = Object.keys(STRINGS.en).filter((k) => !STRINGS.zh[k]).concat(Object.keys(STRINGS.zh).filter((k) => !STRINGS.en[k]));
  must(missing.length === 0, `every string in both languages: ${missing}`);
  const entry = mp.require("lib/entry.js");
  const r = "Zk3_q9vX-2mP8sLwQ4rTyU7a";
  must(entry.fromOptions({ q: encodeURIComponent(`https://login.example.com/q/${r}`) }) === r, "q");
  must(entry.fromOptions({ q: encodeURIComponent(`https://login.example.com/q/${r}?from=mail`) }) === r, "q with a query");
  must(entry.fromOptions({ scene: encodeURIComponent(r) }) === r, "scene");
  must(entry.fromOptions({ q: encodeURIComponent("https://login.example.com/q/short") }) === null, "not a random");
  must(entry.fromScanResult({ scanType: "WX_CODE", path: `pages/scan/scan?scene=${r}` }) === r, "a Mini Program code");
  must(entry.fromScanResult({ result: `https://elsewhere.example/q/${r}` }) === null, "another site's code");
  const warn = describe.mismatchText({ reason: "country", requester_country: "Russia", scanner_country: "China" });
  must(warn.includes("Russia") && warn.includes("China"), warn);
}

// ---- a device asking to sign in (RFC 8628) ----

const DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

/** A device authorization of the public client DEVICE_CLIENT_ID, from a TV at `ip`. */
async function deviceAuth(ip) {
  const res = await fetch(`${SCANGATE}/oidc/device/auth`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": ip, "user-agent": "curl/8.5.0" },
    body: new URLSearchParams({ client_id: DEVICE_CLIENT_ID, scope: "openid profile" }),
  });
  must(res.ok, `device authorization: ${res.status}`);
  return res.json();
}

/** The device's poll: the token endpoint's JSON. */
async function devicePoll(auth) {
  const res = await fetch(`${SCANGATE}/oidc/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: DEVICE_GRANT, client_id: DEVICE_CLIENT_ID, device_code: auth.device_code }),
  });
  return res.json();
}

async function device() {
  const erin = new Phone({ openid: "o-mp-erin", ip: "203.0.113.9" });
  const tv = await deviceAuth("203.0.113.20");

  // The TV shows verification_uri_complete as a QR code; WeChat opens us with it as `q`.
  await mp.launch(erin, { q: encodeURIComponent(tv.verification_uri_complete) });
  must(mp.current().route === "pages/device/device", `the device page opens: ${mp.current().route}`);
  must(mp.text("#app-name") === "Living-room TV", `the app's name: ${mp.text("#app-name")}`);
  must(mp.text("#user-code") === tv.user_code, `the code to compare: ${mp.text("#user-code")} is ${tv.user_code}`);
  must((mp.text("#device-check") || "").includes("exactly the one on the screen"), "asked to compare the codes");
  must(mp.text("#device-ip") === "203.0.113.20", `the device's IP: ${mp.text("#device-ip")}`);
  must(mp.text("#device-place") === "Shanghai, China", `the device's place: ${mp.text("#device-place")}`);
  must(mp.text("#approve") === "Approve" && mp.text("#decline") === "Decline", "Approve and Decline, side by side");
  const buttons = mp.current().page.dom.innerHTML;
  must(!/checked|selected/.test(buttons), "nothing is chosen for the person");
  snap("device");
  // Opening the page approved nothing.
  const waiting = await devicePoll(tv);
  must(waiting.error === "authorization_pending", `still pending: ${show(waiting)}`);

  await mp.fire("#approve");
  await mp.idle();
  must(mp.current().route === "pages/result/result", `the result page: ${mp.current().route}`);
  must(mp.text("#title") === "Device signed in", mp.text("#title"));
  must(mp.text("#message") === "Living-room TV is signed in on the device.", mp.text("#message"));
  await advance(5);
  const tokens = await devicePoll(tv);
  must(typeof tokens.id_token === "string", `the device gets its tokens: ${show(tokens)}`);
  console.log("device approved");

  // From the scan button, declined: the device is refused.
  const other = await deviceAuth("203.0.113.21");
  erin.scans.push({ result: other.verification_uri_complete, scanType: "QR_CODE" });
  await mp.launch(erin, {});
  await mp.fire("#scan");
  must(mp.current().route === "pages/device/device", `the scanned link opens: ${mp.current().route}`);
  await mp.fire("#decline");
  await mp.idle();
  must(mp.text("#title") === "Declined", mp.text("#title"));
  must(mp.text("#message") === "Declined: the device is not signed in.", mp.text("#message"));
  const refused = await devicePoll(other);
  must(refused.error === "access_denied", `the device is refused: ${show(refused)}`);
  console.log("device declined");

  // Decided already, or expired: the error screens.
  await mp.launch(erin, { q: encodeURIComponent(other.verification_uri_complete) });
  await screen("used", "The code was already used");
  const late = await deviceAuth("203.0.113.22");
  await advance(601);
  await mp.launch(erin, { q: encodeURIComponent(late.verification_uri_complete) });
  await screen("expired", "The code has expired");

  // A device link is never taken for a login code, nor a login code for a device link.
  const entry = mp.require("lib/entry.js");
  const r = "Zk3_q9vX-2mP8sLwQ4rTyU7a";
  must(entry.deviceFromOptions({ q: encodeURIComponent(`https://login.example.com/q/d/${r}`) }) === r, "a device link");
  must(entry.fromOptions({ q: encodeURIComponent(`https://login.example.com/q/d/${r}`) }) === null, "not a login");
  must(entry.deviceFromOptions({ q: encodeURIComponent(`https://login.example.com/q/${r}`) }) === null, "not a device");
  must(entry.deviceFromScanResult({ result: `https://elsewhere.example/q/d/${r}` }) === null, "another site's device link");
}

// ---- QRLJacking: the attacker's code, scanned by the victim ----

async function qrljacking() {
  // The attacker opens a login in a datacenter and lures the victim, in Shanghai, to scan it.
  const qr = await pcCode(APP_ID, {
    ip: "198.51.100.7",
    ua: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  });
  const victim = new Phone({ openid: "o-mp-victim", ip: "203.0.113.9" });
  await mp.launch(victim, { q: q(qr) });
  must(mp.current().route === "pages/confirm/confirm", `the confirm page: ${mp.current().route}`);
  const device = mp.text("#who-device");
  must(/Firefox/.test(device) && /Linux/.test(device), `the attacker's browser: ${device}`);
  must(mp.text("#who-ip") === "198.51.100.7", `the attacker's IP: ${mp.text("#who-ip")}`);
  must(mp.text("#who-place") === "Ashburn, Virginia, United States", `the attacker's place: ${mp.text("#who-place")}`);
  const warning = mp.text("#mismatch") || "";
  must(warning.startsWith("Be careful"), `a warning: ${warning}`);
  const order = mp.current().page.dom.innerHTML;
  must(order.indexOf('main--warning') >= 0 && order.indexOf('main--warning') < order.indexOf('main--match'), "the warning is above the buttons");
  snap("qrljacking");
  // Misled, the victim taps a number the attacker's screen does not show: the code is cancelled.
  const shown = await pcStatus(qr);
  tapMatch(shown, { wrong: true });
  await mp.idle();
  must(mp.current().options.kind === "wrong_match", `refused: ${show(mp.current().options)}`);
  const after = await pcStatus(qr);
  must(after.status === "cancelled" && !after.ticket, `the attacker gets no ticket: ${show(after)}`);
}

// ---- opened by "Open in WeChat": the link WeChat made for a phone's browser ----

const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

async function link() {
  const bob = new Phone({ openid: "o-mp-link" });
  const qr = await pcCode(APP_ID, { ua: IPHONE });
  must(qr.open_link_url, `a phone's browser is offered a link: ${show(qr)}`);
  const res = await fetch(qr.open_link_url, { headers: { "x-scangate-bind": qr.bind_token } });
  must(res.ok, `the link: ${res.status}`);
  const { url } = await res.json();
  const { links } = await (await fetch(new URL("_sim/links", SIMULATOR))).json();
  const made = links.find((l) => l.url === url);
  must(made && made.query === `random=${qr.random}`, `WeChat made it for this code: ${show(made)}`);

  // WeChat opens the Mini Program at the link's page, with the link's query as its options.
  await mp.launchAt(bob, `${made.path}?${made.query}`);
  must(mp.current().route === "pages/confirm/confirm", `the confirm page opens: ${mp.current().route}`);
  must(mp.text("#app-name") === "App web", `the app's name: ${mp.text("#app-name")}`);
  const device = mp.text("#who-device");
  must(/iOS/.test(device), `the requester is the phone's own browser: ${device}`);
  snap("confirm-from-link");
  await mp.fire("#confirm");
  must(mp.current().route === "pages/result/result", `the result page: ${mp.current().route}`);
  must(mp.text("#title") === "Signed in", `signed in: ${mp.text("#title")}`);
  const done = await pcStatus(qr);
  must(done.status === "confirmed" && done.ticket, `the phone's browser gets its ticket: ${show(done)}`);
  console.log("opened from the link");
}

if (PART === "login") await login();
else if (PART === "qrljacking") await qrljacking();
else if (PART === "refusals") await refusals();
else if (PART === "device") await device();
else if (PART === "link") await link();
else throw new Error(`PART is login, qrljacking, refusals, device or link, not ${PART}`);

if (process.env.SCREENSHOTS === "1" && shots.length) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 375, height: 740 });
    for (const [name, html] of shots) {
      await page.setContent(html);
      await page.screenshot({ path: artifact(`miniprogram-${name}.png`), fullPage: true });
      console.log(`screenshot miniprogram-${name}.png`);
    }
  } finally {
    await browser.close();
  }
}

must(mp.seen.every((body) => !/session_key/.test(body)), "no session_key ever reaches the Mini Program");
console.log("ok");
