// The entry page: opened from an ordinary QR code (options.q), a Mini Program code
// (options.scene) or the home screen, where the scan button reads a code with wx.scanCode.
const entry = require("../../lib/entry.js");
const i18n = require("../../lib/i18n.js");

Component({
  data: { t: {}, notice: "" },
  methods: {
    onLoad(options) {
      this.setData({ t: i18n.strings() });
      wx.setNavigationBarTitle({ title: i18n.t("scan_title") });
      const device = entry.deviceFromOptions(options);
      if (device) {
        this.openDevice(device);
        return;
      }
      const random = entry.fromOptions(options);
      if (random) this.open(random);
    },
    open(random) {
      wx.navigateTo({ url: `/pages/confirm/confirm?random=${encodeURIComponent(random)}` });
    },
    /** A device asking to sign in: its approval page. */
    openDevice(random) {
      wx.navigateTo({ url: `/pages/device/device?random=${encodeURIComponent(random)}` });
    },
    scan() {
      wx.scanCode({
        onlyFromCamera: false,
        scanType: ["qrCode", "wxCode"],
        success: (res) => {
          const device = entry.deviceFromScanResult(res);
          if (device) {
            this.setData({ notice: "" });
            this.openDevice(device);
            return;
          }
          const random = entry.fromScanResult(res);
          if (random) {
            this.setData({ notice: "" });
            this.open(random);
          } else {
            this.setData({ notice: i18n.t("scan_not_ours") });
          }
        },
        // Closing the scanner is not an error worth a screen.
        fail: () => {},
      });
    },
  },
});
