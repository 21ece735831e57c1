// The Mini Program's side of a login, over HTTP: a `wx.login` code minted by the WeChat
// simulator, a session with ScanGate's Mini Program API, then scan, confirm or cancel.
import { must } from "./browser.mjs";

export function phone({ scangate, simulator, appid }) {
  let token = null;

  async function call(method, url, body, auth = true) {
    const headers = {};
    if (body) headers["content-type"] = "application/json";
    if (auth && token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    must(res.ok, `${method} ${url}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  const mp = (path) => `${scangate}/api/mp/v1${path}`;

  return {
    /** Logs `openid` in and sets its profile; returns ScanGate's view of the user. */
    async login(openid, profile) {
      const { code } = await call("POST", new URL("_sim/login", simulator).href, { appid, openid }, false);
      const session = await call("POST", mp("/session"), { appid, code }, false);
      token = session.token;
      return profile ? call("PATCH", mp("/me"), profile) : session.user;
    },
    scan: (random) => call("POST", mp(`/qrcodes/${random}/scan`)),
    /** `body`: what the confirm screen sends (`{ match_number }` when the app has the step). */
    confirm: (random, body) => call("POST", mp(`/qrcodes/${random}/confirm`), body),
    /** As `confirm`, expecting a refusal; returns `{ status, body }`. */
    async refused(random, body) {
      const res = await fetch(mp(`/qrcodes/${random}/confirm`), {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      must(!res.ok, `confirm ${random} was refused`);
      return { status: res.status, body: await res.json() };
    },
    cancel: (random) => call("POST", mp(`/qrcodes/${random}/cancel`)),
  };
}

/** Checks an ID token's RS256 signature against the issuer's JWKS (found through discovery)
 * and its claims; returns the claims. */
export async function verifyIdToken(scangate, jwt, { aud, sub }) {
  const { createPublicKey, verify } = await import("node:crypto");
  const conf = await (await fetch(`${scangate}/oidc/.well-known/openid-configuration`)).json();
  const jwks = await (await fetch(conf.jwks_uri)).json();
  const [h, p, s] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  must(header.alg === "RS256", `alg ${header.alg}`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  must(jwk, `kid ${header.kid} in the JWKS`);
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const signature = Buffer.from(s, "base64url");
  must(verify("RSA-SHA256", Buffer.from(`${h}.${p}`), key, signature), "the signature verifies");
  must(!verify("RSA-SHA256", Buffer.from(`${h}.${p}x`), key, signature), "a changed token does not");
  const claims = JSON.parse(Buffer.from(p, "base64url"));
  must(claims.iss === conf.issuer, `iss ${claims.iss}`);
  must(claims.aud === aud, `aud ${claims.aud}`);
  must(claims.sub === sub, `sub ${claims.sub}`);
  must(claims.exp > Date.now() / 1000, "not expired");
  return claims;
}
