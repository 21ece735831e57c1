// Where a code's `random` comes from: an ordinary QR code opens the Mini Program with
// `options.q` = the URL-encoded `scan_url` (`{public_url}/q/{random}`); a Mini Program code
// with `options.scene` = the `random`; the in-app scan button with wx.scanCode's result.
// A device asking to sign in (RFC 8628) shows the link `{public_url}/q/d/{random}` instead:
// the `device*` functions read those, which the login functions never take for a login.

const config = require("../config.js");

// ScanGate's `random`: URL-safe base64, at most 32 characters (it fits a `scene`).
const RANDOM = /^[A-Za-z0-9_-]{22,32}$/;

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch (_) {
    return null;
  }
}

/** The `random` of a `scan_url` (`…/q/{random}`, query or fragment ignored), else null. */
function fromScanUrl(url) {
  const m = /\/q\/([^/?#]+)\/?(?:[?#].*)?$/.exec(String(url || ""));
  return m && RANDOM.test(m[1]) ? m[1] : null;
}

/** The `random` of a device request's link (`…/q/d/{random}`), else null. */
function deviceFromUrl(url) {
  const m = /\/q\/d\/([^/?#]+)\/?(?:[?#].*)?$/.exec(String(url || ""));
  return m && RANDOM.test(m[1]) ? m[1] : null;
}

/** The device request a page was opened with: `options.q` holding its link, else null. */
function deviceFromOptions(options) {
  const o = options || {};
  const url = o.q ? decode(o.q) : null;
  return url ? deviceFromUrl(url) : null;
}

/** The device request the in-app scanner read: a device link of this ScanGate, else null. */
function deviceFromScanResult(res) {
  const text = String((res && res.result) || "");
  const prefix = `${String(config.scangateUrl).replace(/\/+$/, "")}/q/d/`;
  return text.startsWith(prefix) ? deviceFromUrl(text) : null;
}

/** The `random` a page was opened with (onLoad's `options`), else null. */
function fromOptions(options) {
  const o = options || {};
  if (o.random && RANDOM.test(o.random)) return o.random;
  if (o.scene) {
    const scene = decode(o.scene);
    if (scene && RANDOM.test(scene)) return scene;
  }
  if (o.q) {
    // WeChat opened us only because the URL starts with the rule's prefix `{public_url}/q/`.
    const url = decode(o.q);
    if (url) return fromScanUrl(url);
  }
  return null;
}

/** The `random` of what the in-app scanner read: this ScanGate's `scan_url`, or a Mini Program
 * code of this Mini Program (`path` carrying `scene=`); anything else is null. */
function fromScanResult(res) {
  if (!res) return null;
  if (res.path) {
    const m = /[?&]scene=([^&#]*)/.exec(res.path);
    const scene = m && decode(m[1]);
    if (scene && RANDOM.test(scene)) return scene;
  }
  const text = String(res.result || "");
  const prefix = `${String(config.scangateUrl).replace(/\/+$/, "")}/q/`;
  return text.startsWith(prefix) ? fromScanUrl(text) : null;
}

module.exports = { deviceFromOptions, deviceFromScanResult, deviceFromUrl, fromOptions, fromScanResult, fromScanUrl };
