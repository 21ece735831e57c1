// A device asking to sign in (RFC 8628): which site, the device (its address, place and user
// agent) and the code its screen shows, which the person must compare before approving.
// Nothing is chosen for them: Approve and Decline are equal buttons, and opening the page
// approves nothing.
const api = require("../../lib/api.js");
const describe = require("../../lib/describe.js");
const i18n = require("../../lib/i18n.js");

Component({
  data: {
    t: {},
    random: "",
    loading: true,
    busy: false,
    app: { name: "", logo_url: "" },
    userCode: "",
    who: { device: "", ip: "", place: "", shown: "" },
    mismatch: "",
  },
  methods: {
    async onLoad(options) {
      this.setData({ t: i18n.strings(), random: (options && options.random) || "" });
      wx.setNavigationBarTitle({ title: i18n.t("device_title") });
      let view;
      try {
        view = await api.deviceScan(this.data.random);
      } catch (e) {
        this.fail(e, "scan");
        return;
      }
      const app = view.app || {};
      const device = view.device || {};
      this.setData({
        loading: false,
        app: { name: app.name || "", logo_url: app.logo_url || "" },
        userCode: device.user_code || "",
        who: describe.requesterView(device),
        mismatch: describe.mismatchText(view.mismatch),
      });
    },

    async decide(approve) {
      if (this.data.busy || this.data.loading) return;
      this.setData({ busy: true });
      try {
        await (approve ? api.deviceApprove : api.deviceDeny)(this.data.random);
      } catch (err) {
        this.setData({ busy: false });
        this.fail(err, approve ? "confirm" : "cancel");
        return;
      }
      const q = approve ? `device=1&app=${encodeURIComponent(this.data.app.name)}` : "device=1&declined=1";
      wx.redirectTo({ url: `/pages/result/result?${q}` });
    },

    approve() {
      return this.decide(true);
    },

    decline() {
      return this.decide(false);
    },

    fail(err, during) {
      const kind = describe.errorKind(err, during);
      const retry = err && err.retryAfter ? `&retry_after=${err.retryAfter}` : "";
      wx.redirectTo({ url: `/pages/error/error?kind=${kind}${retry}` });
    },
  },
});
