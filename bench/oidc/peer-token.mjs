// node-oidc-provider for the token endpoint comparison: production mode, an RS256 key, the
// refresh_token grant enabled for client `demo`, and `POST /bench/seed`, which creates a grant
// and a refresh token through the provider's own models (standing in for an interactive login)
// and answers `{refresh_token}`.
//
// node peer-token.mjs PORT
import { generateKeyPairSync } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

const port = Number(process.argv[2] || 18304);
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-rs256", alg: "RS256", use: "sig" };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [jwk] },
  cookies: { keys: ["bench-cookie-key-0123456789abcdef"] },
  clients: [
    {
      client_id: "demo",
      client_secret: "bench-client-secret",
      redirect_uris: ["http://127.0.0.1:3000/callback"],
      grant_types: ["authorization_code", "refresh_token"],
    },
  ],
  scopes: ["openid", "offline_access"],
  pkce: { required: () => false },
  features: { devInteractions: { enabled: false } },
});

let n = 0;
async function seed() {
  const client = await provider.Client.find("demo");
  const accountId = `bench-user-${n++}`;
  const grant = new provider.Grant({ accountId, clientId: "demo" });
  grant.addOIDCScope("openid offline_access");
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    client,
    accountId,
    grantId,
    scope: "openid offline_access",
    gty: "authorization_code",
    authTime: Math.floor(Date.now() / 1000),
  });
  return token.save();
}

const callback = provider.callback();
http
  .createServer(async (req, res) => {
    if (req.method === "POST" && req.url === "/bench/seed") {
      try {
        const refresh_token = await seed();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ refresh_token }));
      } catch (e) {
        res.writeHead(500);
        res.end(String(e));
      }
      return;
    }
    callback(req, res);
  })
  .listen(port, "127.0.0.1", () => console.log(`peer listening on ${port}`));
