// The confirm screen: which site, who is asking (device, IP, place, when the code was shown),
// a warning when the computer and the phone look far apart, the match-number step, the
// optional profile and phone, and Decline as prominent as Confirm.
const api = require("../../lib/api.js");
const describe = require("../../lib/describe.js");
const i18n = require("../../lib/i18n.js");

const PHONE_MODES = ["required", "optional", "off"];

Component({
  data: {
    t: {},
    random: "",
    loading: true,
    busy: false,
    app: { name: "", logo_url: "" },
    who: { device: "", ip: "", place: "", shown: "" },
    mismatch: "",
    choices: [],
    phoneMode: "optional",
    phoneCode: "",
    phoneNote: "",
    nickname: "",
    avatarPath: "",
    avatarUrl: "",
    avatarNote: "",
  },
  methods: {
    async onLoad(options) {
      this.setData({ t: i18n.strings(), random: (options && options.random) || "" });
      wx.setNavigationBarTitle({ title: i18n.t("confirm_title") });
      let scanned;
      try {
        scanned = await api.scan(this.data.random);
      } catch (e) {
        this.fail(e, "scan");
        return;
      }
      const app = scanned.app || {};
      const match = scanned.match;
      this.setData({
        loading: false,
        app: { name: app.name || "", logo_url: app.logo_url || "" },
        who: describe.requesterView(scanned.requester),
        mismatch: describe.mismatchText(scanned.mismatch),
        choices: match && Array.isArray(match.choices) ? match.choices : [],
        phoneMode: PHONE_MODES.indexOf(scanned.phone) >= 0 ? scanned.phone : "optional",
      });
    },

    onNickname(e) {
      this.setData({ nickname: (e.detail && e.detail.value) || "" });
    },

    async onChooseAvatar(e) {
      const path = e.detail && e.detail.avatarUrl;
      if (!path) return;
      this.setData({ avatarPath: path, avatarNote: i18n.t("avatar_uploading") });
      try {
        const res = await api.uploadAvatar(path);
        this.setData({ avatarUrl: res.avatar_url || "", avatarNote: "" });
      } catch (_) {
        this.setData({ avatarUrl: "", avatarNote: i18n.t("avatar_failed") });
      }
    },

    onPhone(e) {
      const code = e.detail && e.detail.code;
      this.setData(
        code ? { phoneCode: code, phoneNote: i18n.t("phone_done") } : { phoneCode: "", phoneNote: i18n.t("phone_denied") },
      );
    },

    /** The confirm body: the match number, and whatever profile and phone were given. */
    body(matchNumber) {
      const body = {};
      if (matchNumber !== undefined) body.match_number = matchNumber;
      const nickname = this.data.nickname.trim();
      if (nickname || this.data.avatarUrl) {
        body.profile = {};
        if (nickname) body.profile.nickname = nickname;
        if (this.data.avatarUrl) body.profile.avatar_url = this.data.avatarUrl;
      }
      if (this.data.phoneCode && this.data.phoneMode !== "off") body.phone = { code: this.data.phoneCode };
      return body;
    },

    /** The Confirm button, or one of the match numbers when the site asks for the match step. */
    async confirm(e) {
      if (this.data.busy || this.data.loading) return;
      let matchNumber;
      if (this.data.choices.length) {
        const n = e && e.currentTarget && e.currentTarget.dataset ? e.currentTarget.dataset.number : undefined;
        if (n === undefined || n === "") return;
        matchNumber = Number(n);
      }
      if (this.data.phoneMode === "required" && !this.data.phoneCode) {
        this.setData({ phoneNote: i18n.t("phone_required") });
        return;
      }
      this.setData({ busy: true });
      let res;
      try {
        res = await api.confirm(this.data.random, this.body(matchNumber));
      } catch (err) {
        this.setData({ busy: false });
        this.fail(err, "confirm");
        return;
      }
      const q = [`app=${encodeURIComponent(this.data.app.name)}`];
      if (res && res.phone_skipped) q.push(`phone_skipped=${encodeURIComponent(res.phone_skipped)}`);
      wx.redirectTo({ url: `/pages/result/result?${q.join("&")}` });
    },

    async decline() {
      if (this.data.busy) return;
      this.setData({ busy: true });
      try {
        await api.cancel(this.data.random);
      } catch (err) {
        this.setData({ busy: false });
        this.fail(err, "cancel");
        return;
      }
      wx.redirectTo({ url: "/pages/result/result?declined=1" });
    },

    fail(err, during) {
      const kind = describe.errorKind(err, during);
      const retry = err && err.retryAfter ? `&retry_after=${err.retryAfter}` : "";
      wx.redirectTo({ url: `/pages/error/error?kind=${kind}${retry}` });
    },
  },
});
