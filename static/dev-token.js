// What the demo site's pages share: JWT decoding and display, and the relying party's PKCE
// and state for "Try the hosted login" (the demo page starts the round trip, the callback page
// ends it).
(() => {
  "use strict";

  // The login in flight, kept per tab from the authorization request to the callback.
  const FLIGHT_KEY = "scangate.dev.hosted-login";

  function base64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // `bytes` random bytes, base64url: 32 give a 43-character PKCE verifier (RFC 7636 §4.1).
  function randomString(bytes) {
    return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
  }

  // The S256 code challenge: BASE64URL(SHA-256(verifier)) (RFC 7636 §4.2).
  async function s256(verifier) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return base64url(new Uint8Array(digest));
  }

  // Decodes (does not verify) a JWT's header and payload.
  function decodeJwt(jwt) {
    const parts = (jwt || "").split(".");
    const part = (s) => {
      try {
        const b64 = s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=");
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return JSON.parse(new TextDecoder().decode(bytes));
      } catch (_) {
        return { error: "not a decodable JWT part" };
      }
    };
    return { header: part(parts[0] || ""), payload: part(parts[1] || "") };
  }

  // Pretty JSON with coloured tokens, built as text nodes (never as HTML).
  function renderJson(el, value) {
    el.replaceChildren();
    const text = JSON.stringify(value, null, 2);
    const re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) el.append(text.slice(last, m.index));
      const span = document.createElement("span");
      if (m[1]) {
        span.className = m[2] ? "j-key" : "j-str";
        span.textContent = m[1];
        el.append(span);
        if (m[2]) el.append(m[2]);
      } else {
        span.className = m[3] ? "j-lit" : "j-num";
        span.textContent = m[0];
        el.append(span);
      }
      last = re.lastIndex;
    }
    el.append(text.slice(last));
  }

  window.ScanGateDev = { FLIGHT_KEY, randomString, s256, decodeJwt, renderJson };
})();
