"""An independent device-flow client (RFC 8628): Authlib's OAuth 2.0 client and `requests`
against a live ScanGate, started by the Rust test `python_rp`.

The device authorization request, then polling the token endpoint as RFC 8628 §3.4–3.5 asks:
wait `interval` seconds between polls, add 5 seconds at each `slow_down`, stop at
`access_denied` or `expired_token`. The ID token is verified with Authlib against the JWKS.

The test plays the Mini Program and the passing of time. This client asks for both on stdout
and waits for the answer on stdin:

- `approve: <verification_uri_complete>` — the person scans the link and approves; the test
  answers `approved`.
- `wait: <seconds>` — the pause before the next poll; the test moves ScanGate's clock on by as
  much and answers `waited`.

Each step prints `ok: <step>`; any failure raises, so the process exits non-zero.
"""

import os
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import IDToken

BASE = os.environ["SCANGATE_URL"]
ISSUER = BASE + "/oidc"
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def must(cond, message):
    if not cond:
        raise AssertionError(message)


def ok(step):
    print(f"ok: {step}", flush=True)


def ask(line, answer):
    print(line, flush=True)
    got = sys.stdin.readline().strip()
    must(got == answer, f"the test answered {got!r} to {line!r}")


# Seconds the test made pass on ScanGate's clock while this client waited: the client's own
# "now" when it checks a token's times.
waited = 0


def wait(seconds):
    global waited
    ask(f"wait: {seconds}", "waited")
    waited += seconds


def poll(client, meta, device_code):
    """One token request: the tokens, or the error code the server answered."""
    try:
        return client.fetch_token(meta["token_endpoint"], grant_type=GRANT, device_code=device_code), None
    except OAuthError as e:
        return None, e.error


def main():
    meta = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=10).json()
    must(meta["issuer"] == ISSUER, f"issuer {meta['issuer']}")
    must(GRANT in meta["grant_types_supported"], "the device grant is offered")
    endpoint = meta["device_authorization_endpoint"]
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    ok("discovery")

    client = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile offline_access",
        token_endpoint_auth_method="client_secret_basic",
    )
    # RFC 8628 §3.1: a form with the scope, the client authenticated as at the token endpoint.
    res = requests.post(
        endpoint,
        data={"scope": "openid profile offline_access"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    must(res.status_code == 200, f"device authorization: HTTP {res.status_code} {res.text}")
    auth = res.json()
    for field in ("device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"):
        must(field in auth, f"{field} in {auth}")
    must(auth["verification_uri_complete"].startswith(BASE + "/q/d/"), auth["verification_uri_complete"])
    interval = auth["interval"]
    ok("device authorization")

    tokens, error = poll(client, meta, auth["device_code"])
    must(error == "authorization_pending", f"before approval: {error}")
    ok("authorization pending")
    # Polling again at once breaks the interval: the server must say slow_down.
    tokens, error = poll(client, meta, auth["device_code"])
    must(error == "slow_down", f"polling at once: {error}")
    interval += 5
    ok("slow down")

    ask("approve: " + auth["verification_uri_complete"], "approved")
    while tokens is None:
        wait(interval)
        tokens, error = poll(client, meta, auth["device_code"])
        if error == "slow_down":
            interval += 5
        elif error not in (None, "authorization_pending"):
            raise AssertionError(f"polling: {error}")
    ok("device flow")

    claims = jwt.decode(
        tokens["id_token"],
        jwks,
        claims_cls=IDToken,
        claims_options={"iss": {"essential": True, "value": ISSUER}},
        claims_params={"client_id": CLIENT_ID},
    )
    claims.validate(now=int(time.time()) + waited)
    sub = claims["sub"]
    ok("id token verified")

    info = client.get(meta["userinfo_endpoint"], timeout=10)
    must(info.status_code == 200 and info.json()["sub"] == sub, f"userinfo: HTTP {info.status_code}")
    refreshed = client.refresh_token(meta["token_endpoint"])
    must(refreshed["refresh_token"] != tokens["refresh_token"], "the refresh token rotated")
    ok("userinfo and refresh")

    again, error = poll(client, meta, auth["device_code"])
    must(again is None and error == "invalid_grant", f"a used device code: {error}")
    ok("single use")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the Rust test shows this line
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        raise
