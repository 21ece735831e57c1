// The real authing-js-sdk 4.x, unchanged, pointed at ScanGate with `appHost`:
// geneCode → checkStatus (0) → scan → (1, nickname and photo only) → confirm → (2, ticket)
// → exchangeUserInfo (a user whose token verifies against the JWKS) → a second exchange fails;
// then startPolling reaches onSuccess.
import { AuthenticationClient } from "authing-js-sdk";
import { must } from "./lib/browser.mjs";
import { AVATAR_PNG, phone, verifyIdToken } from "./lib/phone.mjs";

const { SCANGATE, SIMULATOR, MP_APPID, APP_ID } = process.env;
const client = new AuthenticationClient({ appId: APP_ID, appHost: SCANGATE });
const wx = client.wxqrcode;
const mp = phone({ scangate: SCANGATE, simulator: SIMULATOR, appid: MP_APPID });
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// ---- step by step ----
const { random, url, customLogo } = await wx.geneCode();
must(url === `${SCANGATE}/api/v1/qrcodes/${random}/image.png`, `url ${url}`);
must(customLogo === "", "customLogo is empty: the image is branded");
const image = await fetch(url);
must(image.ok && image.headers.get("content-type") === "image/png", "the url is a PNG");
must((await image.arrayBuffer()).byteLength > 100, "with a body");

let s = await wx.checkStatus(random);
must(s.status === 0 && s.random === random && !s.ticket && !s.userInfo, `pending: ${JSON.stringify(s)}`);

const { avatar_url: photo } = await mp.login("o-sdk-node", { nickname: "节点 Node", avatar: AVATAR_PNG });
must(photo.startsWith(`${SCANGATE}/media/avatars/`), `uploaded avatar ${photo}`);
await mp.scan(random);
s = await wx.checkStatus(random);
must(s.status === 1, `scanned: ${JSON.stringify(s)}`);
must(same(s.userInfo, { nickname: "节点 Node", photo }), `only nickname and photo: ${JSON.stringify(s.userInfo)}`);
must(!s.ticket, "no ticket before confirmation");

await mp.confirm(random);
s = await wx.checkStatus(random);
must(s.status === 2 && typeof s.ticket === "string" && s.ticket.length > 16, `confirmed: ${JSON.stringify(s)}`);

const user = await wx.exchangeUserInfo(s.ticket);
must(user.nickname === "节点 Node" && user.photo === photo, `user: ${JSON.stringify(user)}`);
must(user.openid === "o-sdk-node", `openid ${user.openid}`);
must(typeof user.token === "string" && !Number.isNaN(Date.parse(user.tokenExpiredAt)), "token and tokenExpiredAt");
const claims = await verifyIdToken(SCANGATE, user.token, { aud: APP_ID, sub: user.id });
must(Date.parse(user.tokenExpiredAt) === claims.exp * 1000, "tokenExpiredAt is the token's exp");
console.log(`user ${user.id}`);

let second = null;
try {
  await wx.exchangeUserInfo(s.ticket);
} catch (e) {
  second = e;
}
must(second, "a second exchange of the ticket fails");
const code = second.code ?? JSON.parse(second.message).code;
must(code === 400, `the second exchange's code: ${code}`);

// An unknown code: the SDK's error path with Authing's code.
let unknown = null;
try {
  await wx.checkStatus("AAAAAAAAAAAAAAAAAAAAAAAA");
} catch (e) {
  unknown = e;
}
must(unknown && (unknown.code ?? JSON.parse(unknown.message).code) === 2241, "2241 for an unknown code");

// ---- startPolling ----
const next = await wx.geneCode();
let scanned;
const sawScan = new Promise((resolve) => (scanned = resolve));
const success = new Promise((resolve, reject) => {
  wx.startPolling(next.random, {
    interval: 100,
    onScanned: (info) => scanned(info),
    onSuccess: (userInfo, ticket) => resolve({ userInfo, ticket }),
    onCancel: () => reject(new Error("cancelled")),
    onExpired: () => reject(new Error("expired")),
    onError: (e) => reject(new Error(`polling failed: ${JSON.stringify(e)}`)),
  });
});
await mp.scan(next.random);
const info = await sawScan;
must(same(info, { nickname: "节点 Node", photo }), `onScanned: ${JSON.stringify(info)}`);
await mp.confirm(next.random);
const done = await success;
must(typeof done.ticket === "string", "onSuccess gets the ticket");
const again = await wx.exchangeUserInfo(done.ticket);
must(again.id === user.id, "the same person");
console.log(`user ${again.id}`);
console.log("ok");
