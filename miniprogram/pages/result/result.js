// After a confirm: signed in, why the phone was skipped when it was, and the recent logins
// with "This wasn't me" for any the person does not recognise. After a decline: declined.
const api = require("../../lib/api.js");
const describe = require("../../lib/describe.js");
const i18n = require("../../lib/i18n.js");

function loginView(login) {
  const who = describe.requesterView(login.requester);
  const at = login.confirmed_at ? String(login.confirmed_at).replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, " UTC") : "";
  return {
    id: login.id,
    app: (login.app && login.app.name) || "",
    device: who.device,
    ip: who.ip,
    place: who.place,
    at,
    reported: !!login.reported,
    note: "",
  };
}

Component({
  data: { t: {}, declined: false, title: "", message: "", phoneNote: "", logins: [], loaded: false },
  methods: {
    async onLoad(options) {
      const o = options || {};
      const declined = o.declined === "1";
      // A device's approval (RFC 8628) says so: the device, not a computer, is signed in.
      const device = o.device === "1";
      const app = o.app ? decodeURIComponent(o.app) : "";
      let message = i18n.t("result_body", { app });
      if (declined) message = i18n.t(device ? "device_declined_body" : "declined_body");
      else if (device) message = i18n.t("device_result_body", { app });
      this.setData({
        t: i18n.strings(),
        declined,
        title: i18n.t(declined ? "declined_title" : device ? "device_result_title" : "result_title"),
        message,
        phoneNote: o.phone_skipped === "quota_exhausted" ? i18n.t("result_phone_quota") : "",
      });
      wx.setNavigationBarTitle({ title: this.data.title });
      if (!declined) await this.loadLogins();
    },

    async loadLogins() {
      try {
        const res = await api.logins();
        this.setData({ logins: ((res && res.logins) || []).map(loginView), loaded: true });
      } catch (_) {
        // A ScanGate without the logins list, or a network failure: the sign-in itself is done.
        this.setData({ logins: [], loaded: false });
      }
    },

    async report(e) {
      const id = e.currentTarget.dataset.id;
      const i = this.data.logins.findIndex((l) => String(l.id) === String(id));
      if (i < 0 || this.data.logins[i].reported) return;
      try {
        await api.report(id);
        this.setData({ [`logins[${i}].reported`]: true, [`logins[${i}].note`]: "" });
      } catch (_) {
        this.setData({ [`logins[${i}].note`]: i18n.t("report_failed") });
      }
    },

    again() {
      wx.reLaunch({ url: "/pages/scan/scan" });
    },
  },
});
