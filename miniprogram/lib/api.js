// ScanGate's Mini Program API (`/api/mp/v1`) over wx.request and wx.uploadFile.
//
// The session: wx.login's code is traded for an opaque bearer token (POST /session), kept with
// wx.setStorageSync. WeChat's session_key never reaches the Mini Program: ScanGate keeps it. A
// call refused with 401 (the token expired or was revoked) logs in again once and is retried.

const config = require("../config.js");

const TOKEN_KEY = "scangate_token";

/** A refused or failed call: `status` 0 is a network failure; `code` is ScanGate's stable
 * error code (`expired`, `conflict`, `wrong_match_number`, …) or "network". */
class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function baseUrl() {
  return String(config.scangateUrl).replace(/\/+$/, "");
}

/** The AppID WeChat runs this Mini Program as (project.config.json's `appid`). */
function appid() {
  return wx.getAccountInfoSync().miniProgram.appId;
}

function header(headers, name) {
  if (!headers) return undefined;
  const want = name.toLowerCase();
  const key = Object.keys(headers).find((k) => k.toLowerCase() === want);
  return key === undefined ? undefined : headers[key];
}

/** Turns a wx.request / wx.uploadFile answer into the JSON body, or throws an ApiError. */
function settle(res) {
  let body = res.data;
  if (typeof body === "string") {
    try {
      body = body ? JSON.parse(body) : null;
    } catch (_) {
      body = null;
    }
  }
  if (res.statusCode >= 200 && res.statusCode < 300) return body;
  const code = (body && body.error) || `http_${res.statusCode}`;
  const retry = Number(header(res.header, "retry-after"));
  throw new ApiError(res.statusCode, code, body && body.message, Number.isFinite(retry) ? retry : undefined);
}

function networkError(err) {
  return new ApiError(0, "network", (err && err.errMsg) || "network error");
}

function rawRequest(method, path, data, token) {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    wx.request({
      url: baseUrl() + path,
      method,
      data: data === undefined ? undefined : data,
      header: headers,
      dataType: "json",
      success: (res) => {
        try {
          resolve(settle(res));
        } catch (e) {
          reject(e);
        }
      },
      fail: (err) => reject(networkError(err)),
    });
  });
}

function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res.code ? resolve(res.code) : reject(new ApiError(502, "wechat_error", res.errMsg))),
      fail: (err) => reject(new ApiError(502, "wechat_error", err && err.errMsg)),
    });
  });
}

/** Logs in afresh: wx.login → POST /session; keeps and returns the token. */
async function login() {
  const code = await wxLogin();
  const session = await rawRequest("POST", "/api/mp/v1/session", { appid: appid(), code });
  wx.setStorageSync(TOKEN_KEY, session.token);
  return session.token;
}

async function token() {
  return wx.getStorageSync(TOKEN_KEY) || login();
}

/** Runs `call(token)`; when ScanGate refuses the token, logs in again and runs it once more. */
async function authorised(call) {
  try {
    return await call(await token());
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    wx.removeStorageSync(TOKEN_KEY);
    return call(await login());
  }
}

function request(method, path, data) {
  return authorised((t) => rawRequest(method, path, data, t));
}

/** Uploads a file chosen with `open-type="chooseAvatar"`; returns `{avatar_url}`. */
function uploadAvatar(filePath) {
  return authorised(
    (t) =>
      new Promise((resolve, reject) => {
        wx.uploadFile({
          url: `${baseUrl()}/api/mp/v1/me/avatar`,
          filePath,
          name: "file",
          header: { authorization: `Bearer ${t}` },
          success: (res) => {
            try {
              resolve(settle(res));
            } catch (e) {
              reject(e);
            }
          },
          fail: (err) => reject(networkError(err)),
        });
      }),
  );
}

const path = (random, action) => `/api/mp/v1/qrcodes/${encodeURIComponent(random)}/${action}`;
const devicePath = (random, action) => `/api/mp/v1/devices/${encodeURIComponent(random)}/${action}`;

module.exports = {
  ApiError,
  TOKEN_KEY,
  login,
  scan: (random) => request("POST", path(random, "scan")),
  confirm: (random, body) => request("POST", path(random, "confirm"), body || {}),
  cancel: (random) => request("POST", path(random, "cancel")),
  deviceScan: (random) => request("POST", devicePath(random, "scan")),
  deviceApprove: (random) => request("POST", devicePath(random, "approve")),
  deviceDeny: (random) => request("POST", devicePath(random, "deny")),
  logins: () => request("GET", "/api/mp/v1/me/logins"),
  report: (id) => request("POST", `/api/mp/v1/logins/${encodeURIComponent(id)}/report`),
  uploadAvatar,
};
