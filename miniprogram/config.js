// The one place a site configures this Mini Program: where its ScanGate is.
//
// `scangateUrl` is ScanGate's `public_url`, without a trailing slash. The QR codes it shows
// encode `{scangateUrl}/q/{random}`; the Mini Program calls `{scangateUrl}/api/mp/v1/…`.
// The AppID is not set here: it is `appid` in project.config.json (WeChat's developer tools
// read it from there), and the code reads it at run time from wx.getAccountInfoSync().
module.exports = {
  scangateUrl: "https://login.example.com",
};
