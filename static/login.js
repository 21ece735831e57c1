// The hosted login page: follows its QR code and moves on when the phone confirms.
//
// Status arrives by Server-Sent Events from the code's events URL; where EventSource is
// missing or the stream cannot be opened, by long-poll (`?wait=25&status=<known>`), which
// answers as soon as the status changes. There is no poll interval. On "confirmed" the page
// goes to the continue URL, which takes the one-time ticket for this browser. An expired code
// is replaced by reloading the page, but only while the page is visible. The page asks for the
// status once more whenever it comes back into view (a phone back from WeChat's "Open in
// WeChat" may have suspended the stream).
(() => {
  "use strict";

  const root = document.getElementById("login");
  if (!root) return;
  const data = root.dataset;
  const FINAL = ["confirmed", "cancelled", "expired"];
  const LONG_POLL_WAIT = 25;
  const MAX_RENEWALS = 15;
  const RENEWALS_KEY = "scangate.renewals";

  let known = "pending";
  let done = false;
  let source = null;
  let failures = 0;
  const deadline = Date.now() + Number(data.expiresIn || 0) * 1000;

  function setState(state) {
    root.dataset.state = state;
  }

  function stop() {
    done = true;
    document.getElementById("countdown").hidden = true;
    if (source) {
      source.close();
      source = null;
    }
  }

  function showScanner(by) {
    const avatar = document.getElementById("scanner-avatar");
    const name = document.getElementById("scanner-name");
    const url = by && by.avatar_url;
    avatar.src = url || avatar.dataset.default;
    name.textContent = (by && by.nickname) || "";
  }

  // The match step: the number the person taps among three on the phone.
  function showMatch(view) {
    const n = view.status === "scanned" ? view.match_number : null;
    if (n == null) {
      delete root.dataset.match;
      return;
    }
    root.dataset.match = String(n);
    document.getElementById("match-number").textContent = String(n);
  }

  function apply(view) {
    if (done || !view || !view.status) return;
    known = view.status;
    if (view.status === "scanned") showScanner(view.scanned_by);
    showMatch(view);
    if (view.status === "cancelled") {
      const reason = view.cancel_reason;
      root.dataset.cancelReason =
        reason === "declined" || reason === "wrong_match_number" ? reason : "other";
    }
    setState(view.status);
    if (FINAL.includes(view.status)) {
      stop();
      if (view.status === "confirmed") {
        sessionStorage.removeItem(RENEWALS_KEY);
        location.replace(data.continueUrl);
      } else if (view.status === "expired") {
        renewWhenVisible();
      }
    }
  }

  function fail() {
    if (done) return;
    stop();
    setState("error");
  }

  function follow() {
    if (!("EventSource" in window)) {
      longPoll();
      return;
    }
    let opened = false;
    source = new EventSource(data.eventsUrl);
    source.addEventListener("open", () => {
      opened = true;
    });
    source.addEventListener("status", (e) => {
      failures = 0;
      apply(JSON.parse(e.data));
    });
    source.addEventListener("error", (e) => {
      if (done) return;
      if (e.data) {
        // The server's own error event: the code is gone or the service is down.
        const body = JSON.parse(e.data);
        if (body.error === "not_found") apply({ status: "expired" });
        else fail();
        return;
      }
      // The browser reconnects by itself unless the stream could not be opened at all.
      if (!opened || source.readyState === EventSource.CLOSED) {
        source.close();
        source = null;
        longPoll();
      }
    });
  }

  async function longPoll() {
    while (!done) {
      const url = data.statusUrl + "?wait=" + LONG_POLL_WAIT + "&status=" + encodeURIComponent(known);
      try {
        const res = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
        if (res.status === 404 || res.status === 410) {
          apply({ status: "expired" });
          return;
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        failures = 0;
        apply(await res.json());
      } catch (_) {
        failures += 1;
        if (failures > 5) {
          fail();
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * 2 ** failures));
      }
    }
  }

  // ---- countdown and renewal ----

  const countdown = document.getElementById("countdown");
  const countdownValue = document.getElementById("countdown-value");

  function tick() {
    if (done) {
      countdown.hidden = true;
      return;
    }
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    countdown.hidden = false;
    countdownValue.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    countdown.classList.toggle("soon", left <= 15);
    if (left <= 0) {
      apply({ status: "expired" });
      return;
    }
    setTimeout(tick, 1000 - (Date.now() % 1000) + 5);
  }

  function renewals() {
    return Number(sessionStorage.getItem(RENEWALS_KEY) || 0);
  }

  function renew() {
    sessionStorage.setItem(RENEWALS_KEY, String(renewals() + 1));
    location.reload();
  }

  function renewWhenVisible() {
    if (renewals() >= MAX_RENEWALS) return; // someone left the page open: wait for a click
    if (document.visibilityState === "visible") {
      setTimeout(renew, 600);
    } else {
      document.addEventListener(
        "visibilitychange",
        () => {
          if (document.visibilityState === "visible") renew();
        },
        { once: true },
      );
    }
  }

  // Back from WeChat ("Open in WeChat" on this phone): a stream the phone suspended meanwhile
  // may have missed the change, so ask once.
  function recheck() {
    if (done || document.visibilityState !== "visible") return;
    fetch(data.statusUrl, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then((res) => (res.ok ? res.json() : null))
      .then((view) => view && apply(view), () => {});
  }
  document.addEventListener("visibilitychange", recheck);
  window.addEventListener("pageshow", (e) => {
    if (e.persisted) recheck();
  });

  for (const button of root.querySelectorAll('[data-action="renew"]')) {
    button.addEventListener("click", () => {
      sessionStorage.removeItem(RENEWALS_KEY);
      location.reload();
    });
  }

  root.classList.add("js");
  follow();
  tick();
})();
