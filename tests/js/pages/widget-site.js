// The site's own script: one mount call.
const params = new URLSearchParams(location.search);
const site = (window.site = { events: [] });
site.widget = ScanGate.mount(document.getElementById("login"), {
  appId: params.get("app"),
  lang: params.get("lang") || undefined,
  onScanned: (who) => site.events.push("scanned:" + who.nickname),
  onSuccess: (result) => {
    site.result = result;
    site.events.push("success");
  },
  onCancel: () => site.events.push("cancelled"),
  onExpired: () => site.events.push("expired"),
  onError: (e) => site.events.push("error:" + (e.code || e.message)),
});
