// The demo app's redirect URI, as the end of "Try the hosted login": the relying party checks
// `state` against the login this tab started on the demo page, swaps the code at the token
// endpoint with its PKCE verifier (RFC 7636 §4.5; a public client has no secret), and shows the
// ID token after checking its `nonce`, `aud` and `iss`. Signatures are checked against the
// JWKS by real relying parties; here the token is only decoded.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const i18n = window.ScanGateI18n;
  const bi = (zh, en) => i18n.node(zh, en);
  const dev = window.ScanGateDev;

  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;

  let flight = null;
  try {
    flight = JSON.parse(sessionStorage.getItem(dev.FLIGHT_KEY) || "null");
  } catch (_) {
    flight = null;
  }
  $("hosted").hidden = false;

  function status(node, isError) {
    $("hosted-status").replaceChildren(node);
    $("hosted-status").classList.toggle("error", !!isError);
  }

  function check(ok, zh, en) {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "bad";
    li.dataset.ok = String(ok);
    li.append(ok ? "✓ " : "✕ ", bi(zh, en));
    $("hosted-checks").appendChild(li);
    return ok;
  }

  // The path of an absolute endpoint, so the request stays on this page's origin.
  function local(url) {
    const u = new URL(url, location.href);
    return u.pathname + u.search;
  }

  async function run() {
    if (!flight || flight.state !== params.get("state")) {
      status(
        bi(
          "state 与本标签页在演示站发起的登录不符，依赖方不会用这个 code 换令牌。请从演示站点击“试试托管登录”。",
          "The state matches no login this tab started on the demo site, so a relying party does not swap this code. Start from “Try the hosted login” on the demo site."
        ),
        true
      );
      return;
    }
    // One use: a reload must not replay the code.
    sessionStorage.removeItem(dev.FLIGHT_KEY);
    check(true, "state 与发起的请求一致", "state matches the request this tab sent");
    if (params.has("error")) {
      status(bi("授权失败：" + params.get("error"), "Authorization failed: " + params.get("error")), true);
      return;
    }
    status(bi("正在请求令牌端点…", "Calling the token endpoint…"));
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: flight.redirect_uri,
      client_id: flight.client_id,
      code_verifier: flight.verifier,
    });
    let res;
    let answer;
    try {
      res = await fetch(local(flight.token_endpoint), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body,
        credentials: "omit",
      });
      answer = await res.json();
    } catch (e) {
      const f = bi("令牌端点无法访问：", "The token endpoint could not be reached: ");
      f.append(String(e.message || e));
      status(f, true);
      return;
    }
    dev.renderJson($("hosted-response"), redact(answer));
    $("hosted-result").hidden = false;
    if (!res.ok || !answer.id_token) {
      status(bi("令牌端点拒绝了：" + (answer.error || res.status), "The token endpoint refused: " + (answer.error || res.status)), true);
      return;
    }
    const token = dev.decodeJwt(answer.id_token);
    dev.renderJson($("hosted-header"), token.header);
    dev.renderJson($("hosted-payload"), token.payload);
    const claims = token.payload;
    const ok = [
      check(claims.nonce === flight.nonce, "nonce 与请求一致", "nonce matches the request"),
      check(claims.aud === flight.client_id, "aud 是演示应用 " + flight.client_id, "aud is the demo app, " + flight.client_id),
      check(claims.iss === flight.issuer, "iss 是 " + flight.issuer, "iss is " + flight.issuer),
    ].every(Boolean);
    $("hosted").dataset.result = ok ? "signed-in" : "refused";
    status(
      ok
        ? bi("已登录：" + (claims.nickname || claims.sub), "Signed in as " + (claims.nickname || claims.sub))
        : bi("ID 令牌未通过检查", "The ID token failed a check"),
      !ok
    );
    history.replaceState(null, "", location.pathname);
  }

  // The answer as shown: long tokens cut short, so the page stays readable.
  function redact(answer) {
    const shown = {};
    for (const [k, v] of Object.entries(answer || {})) {
      shown[k] = typeof v === "string" && v.length > 60 ? v.slice(0, 24) + "…" + v.slice(-12) : v;
    }
    return shown;
  }

  run();
})();
