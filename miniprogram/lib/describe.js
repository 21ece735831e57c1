// What the confirm and result screens say about a login request, and which screen an error is.

const i18n = require("./i18n.js");

/** "shown 12 s ago" / "shown 3 min ago", from `shown_seconds_ago` or else `created_at`. */
function shownAgo(requester, now) {
  let secs = requester && requester.shown_seconds_ago;
  if (typeof secs !== "number" && requester && requester.created_at) {
    const at = Date.parse(requester.created_at);
    if (Number.isFinite(at)) secs = Math.max(0, Math.round(((now || Date.now()) - at) / 1000));
  }
  if (typeof secs !== "number") return "";
  if (secs < 5) return i18n.t("shown_now");
  if (secs < 120) return i18n.t("shown_secs", { n: secs });
  return i18n.t("shown_mins", { n: Math.floor(secs / 60) });
}

/** "Chrome on Windows": ScanGate's `description`, else browser and OS, else the raw UA. */
function device(requester) {
  const r = requester || {};
  if (r.description) return r.description;
  if (r.browser && r.os) return `${r.browser} · ${r.os}`;
  return r.browser || r.os || r.user_agent || i18n.t("unknown_browser");
}

/** "Shanghai, Shanghai, China", or "" when ScanGate knows no place. */
function place(requester) {
  const l = requester && requester.location;
  if (!l) return "";
  const parts = [];
  for (const p of [l.city, l.region, l.country]) {
    if (p && parts.indexOf(p) < 0) parts.push(p);
  }
  return parts.join(", ");
}

/** The lines of the "who is asking" block. */
function requesterView(requester, now) {
  const r = requester || {};
  return {
    device: device(r),
    ip: r.ip || "",
    place: place(r),
    shown: shownAgo(r, now),
  };
}

/** The warning shown above the buttons when the phone and the computer look far apart. */
function mismatchText(mismatch) {
  if (!mismatch) return "";
  if (mismatch.reason === "datacenter") return i18n.t("mismatch_datacenter");
  if (mismatch.reason === "country" && mismatch.requester_country && mismatch.scanner_country) {
    return i18n.t("mismatch_country", {
      requester: mismatch.requester_country,
      scanner: mismatch.scanner_country,
    });
  }
  return mismatch.message || i18n.t("mismatch_datacenter");
}

/** The error screen for a refused call: one of the `err_*_title` kinds of the i18n module. */
function errorKind(err, during) {
  const status = err && err.status;
  const code = err && err.code;
  if (code === "wrong_match_number") return "wrong_match";
  if (code === "rate_limited" || status === 429) return "rate_limited";
  if (status === 0 || code === "network") return "network";
  if (status === 410) return "expired";
  if (status === 409) return "used";
  if (status === 404) return "not_found";
  // At scan a 403 is another Mini Program's code (or a site that refuses this account); later
  // it is a code someone else scanned.
  if (status === 403) return during === "scan" ? "other_program" : "used";
  if (status === 502 || code === "wechat_error" || code === "invalid_code") return "wechat";
  if (status === 503) return "unavailable";
  return "generic";
}

module.exports = { device, errorKind, mismatchText, place, requesterView, shownAgo };
