// One screen per way a login can fail: expired, already used, another Mini Program's code,
// a wrong match number, too many attempts, the network, WeChat, or the service.
const i18n = require("../../lib/i18n.js");

const KINDS = ["expired", "used", "other_program", "not_found", "wrong_match", "rate_limited", "network", "wechat", "unavailable", "generic"];

Component({
  data: { t: {}, kind: "", title: "", message: "" },
  methods: {
    onLoad(options) {
      const o = options || {};
      const kind = KINDS.indexOf(o.kind) >= 0 ? o.kind : "generic";
      const n = Number(o.retry_after) > 0 ? Number(o.retry_after) : 60;
      this.setData({
        t: i18n.strings(),
        kind,
        title: i18n.t(`err_${kind}_title`),
        message: i18n.t(`err_${kind}_body`, { n }),
      });
      wx.setNavigationBarTitle({ title: this.data.title });
    },
    again() {
      wx.reLaunch({ url: "/pages/scan/scan" });
    },
  },
});
