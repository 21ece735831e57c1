// A site that used Authing: only appHost changed.
const params = new URLSearchParams(location.search);
const client = new Authing.AuthenticationClient({ appId: params.get("app"), appHost: "__SCANGATE__" });
window.sdk = { client, errors: [] };
if (!params.has("idle")) {
  client.wxqrcode.startScanning("qrcode", {
    onCodeShow: (random) => (window.sdk.random = random),
    onScanned: (userInfo) => (window.sdk.scanned = userInfo),
    onSuccess: (userInfo, ticket) => Object.assign(window.sdk, { userInfo, ticket }),
    onError: (message) => window.sdk.errors.push(String(message)),
  });
}
