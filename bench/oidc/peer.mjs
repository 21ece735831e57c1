// The peer of the OpenID Connect benchmark: node-oidc-provider in production mode with an
// RS256 key, serving the same discovery and JWKS a relying party fetches.
//
// node peer.mjs PORT
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.argv[2] || 18302);
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
    },
  ],
  pkce: { required: () => false },
  features: { devInteractions: { enabled: false } },
});
provider.listen(port, "127.0.0.1", () => console.log(`peer listening on ${port}`));
