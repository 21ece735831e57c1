"""An independent relying party: Authlib's OAuth 2.0 / OpenID Connect client against a live
ScanGate, started by the Rust test `python_rp`.

The code flow with PKCE (S256) through the hosted page, with `requests` playing the browser and
the Mini Program API playing the phone; the ID token verified with Authlib against the JWKS;
userinfo; a refresh; RP-initiated logout with `id_token_hint`. Each step prints `ok: <step>`;
any failure raises, so the process exits non-zero with the reason.
"""

import html
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken, IDToken

BASE = os.environ["SCANGATE_URL"]
ISSUER = BASE + "/oidc"
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
POST_LOGOUT_URI = os.environ["POST_LOGOUT_URI"]
PHONE_TOKEN = os.environ["PHONE_TOKEN"]
PHONE_CODE = os.environ["PHONE_CODE"]
EXPECTED_PHONE = os.environ["EXPECTED_PHONE"]


def must(cond, message):
    if not cond:
        raise AssertionError(message)


def ok(step):
    print(f"ok: {step}", flush=True)


def attr(page, name):
    found = re.search(name + r'="([^"]*)"', page)
    must(found, f"no {name} in the hosted page")
    return html.unescape(found.group(1))


def phone(path, body=None):
    res = requests.post(
        BASE + path,
        headers={"authorization": "Bearer " + PHONE_TOKEN},
        json=body,
        timeout=10,
    )
    must(res.ok, f"phone {path}: HTTP {res.status_code} {res.text}")


def verify(id_token, jwks, claims_cls, **params):
    claims = jwt.decode(
        id_token,
        jwks,
        claims_cls=claims_cls,
        claims_options={"iss": {"essential": True, "value": ISSUER}},
        claims_params={"client_id": CLIENT_ID, **params},
    )
    claims.validate()
    return claims


def main():
    meta = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=10).json()
    must(meta["issuer"] == ISSUER, f"issuer {meta['issuer']}")
    must("S256" in meta["code_challenge_methods_supported"], "S256 is offered")
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    ok("discovery")

    client = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile phone offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    must("code_challenge=" in url, "Authlib sent a PKCE challenge")

    browser = requests.Session()
    page = browser.get(url, allow_redirects=False, timeout=10)
    must(page.status_code == 200, f"hosted page: HTTP {page.status_code}")
    random = attr(page.text, "data-random")
    phone(f"/api/mp/v1/qrcodes/{random}/scan")
    phone(
        f"/api/mp/v1/qrcodes/{random}/confirm",
        {"profile": {"nickname": "李雷"}, "phone": {"code": PHONE_CODE}},
    )
    back = browser.get(
        urljoin(BASE, attr(page.text, "data-continue-url")),
        allow_redirects=False,
        timeout=10,
    )
    must(back.status_code == 303, f"continue: HTTP {back.status_code}")
    callback = back.headers["location"]
    must(callback.startswith(REDIRECT_URI + "?"), f"back at {callback}")
    must(parse_qs(urlparse(callback).query)["iss"] == [ISSUER], "iss in the response")
    ok("hosted page")

    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    claims = verify(token["id_token"], jwks, CodeIDToken, nonce=nonce, access_token=token["access_token"])
    must(claims["nickname"] == "李雷", f"nickname {claims.get('nickname')}")
    must(claims["phone_number"] == EXPECTED_PHONE, f"phone_number {claims.get('phone_number')}")
    must(claims["phone_number_verified"] is True, "phone_number_verified")
    sub = claims["sub"]
    ok("code flow with PKCE")

    info = client.get(meta["userinfo_endpoint"], timeout=10)
    must(info.status_code == 200, f"userinfo: HTTP {info.status_code}")
    info = info.json()
    must(info["sub"] == sub, "userinfo sub")
    must(info["phone_number"] == EXPECTED_PHONE, f"userinfo phone_number {info.get('phone_number')}")
    ok("userinfo")

    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(meta["token_endpoint"])
    must(refreshed["refresh_token"] != first_refresh, "the refresh token rotated")
    again = verify(refreshed["id_token"], jwks, IDToken)
    must(again["sub"] == sub, "same user after refresh")
    info = client.get(meta["userinfo_endpoint"], timeout=10)
    must(info.status_code == 200 and info.json()["sub"] == sub, "userinfo with the new access token")
    reused = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    must(reused.status_code == 400 and reused.json()["error"] == "invalid_grant", "a used refresh token is refused")
    ok("refresh")

    bye = browser.get(
        meta["end_session_endpoint"],
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": "bye",
        },
        allow_redirects=False,
        timeout=10,
    )
    must(bye.status_code == 303, f"logout: HTTP {bye.status_code}")
    must(bye.headers["location"] == POST_LOGOUT_URI + "?state=bye", bye.headers["location"])
    silent, _ = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48), nonce=nonce, prompt="none"
    )
    res = browser.get(silent, allow_redirects=False, timeout=10)
    error = parse_qs(urlparse(res.headers["location"]).query).get("error")
    must(error == ["login_required"], f"after logout prompt=none gives {error}")
    ok("logout")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the Rust test shows this line
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        raise
