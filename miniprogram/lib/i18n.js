// Every string the Mini Program shows, in zh-CN and en. The language is WeChat's own
// (wx.getAppBaseInfo, or wx.getSystemInfoSync on older base libraries): zh* → zh-CN, else en.

const STRINGS = {
  zh: {
    scan_title: "扫码登录",
    scan_intro: "扫描网页上的二维码，在手机上确认登录。",
    scan_button: "扫一扫",
    scan_not_ours: "这不是本小程序的登录二维码。",
    loading: "正在读取登录请求…",
    confirm_title: "确认登录",
    confirm_to: "登录到",
    who_heading: "谁在请求登录",
    who_device: "设备",
    who_ip: "IP 地址",
    who_place: "位置",
    who_shown: "二维码",
    shown_now: "刚刚显示",
    shown_secs: "{n} 秒前显示",
    shown_mins: "{n} 分钟前显示",
    unknown_browser: "未知浏览器",
    unknown_place: "未知",
    mismatch_title: "请注意",
    mismatch_country: "请求登录的电脑在 {requester}，而你的手机在 {scanner}。如果不是你本人在电脑上操作，请拒绝。",
    mismatch_datacenter: "请求来自数据中心的网络，而不是普通家庭或办公网络。如果有人让你扫这个码，请拒绝。",
    match_heading: "点选电脑屏幕上显示的数字",
    match_hint: "只有电脑屏幕上显示的数字才能完成登录；选错会取消这次登录。",
    profile_heading: "个人资料（可选）",
    avatar_button: "头像",
    avatar_uploading: "正在上传头像…",
    avatar_failed: "头像上传失败，可跳过。",
    nickname_label: "昵称",
    nickname_placeholder: "填写昵称",
    phone_heading: "手机号",
    phone_button: "授权手机号",
    phone_done: "已授权手机号",
    phone_required: "该网站需要你的手机号才能登录。",
    phone_optional: "可选，可以跳过。",
    phone_denied: "未授权手机号。",
    confirm_button: "确认登录",
    decline_button: "拒绝",
    working: "请稍候…",
    result_title: "已登录",
    result_body: "你已在电脑上登录 {app}。",
    result_phone_quota: "本次未能获取手机号：该小程序今日的手机号验证次数已用完。登录不受影响。",
    declined_title: "已拒绝",
    declined_body: "这次登录已取消，电脑没有登录。",
    logins_heading: "最近的登录",
    logins_none: "还没有登录记录。",
    not_me_button: "不是我本人",
    reported: "已报告，该登录已被退出",
    report_failed: "报告失败，请重试。",
    scan_again: "重新扫码",
    retry: "重试",
    err_expired_title: "二维码已过期",
    err_expired_body: "请在电脑上刷新二维码后重新扫描。",
    err_used_title: "二维码已被使用",
    err_used_body: "这个二维码已被扫描或已完成登录。请在电脑上刷新二维码后重新扫描。",
    err_other_program_title: "无法在此小程序中使用",
    err_other_program_body: "这个二维码属于另一个小程序或网站不允许你的账号登录。",
    err_not_found_title: "二维码无效",
    err_not_found_body: "找不到这个二维码，请在电脑上刷新后重新扫描。",
    err_wrong_match_title: "数字不一致，登录已取消",
    err_wrong_match_body: "你选的数字与电脑上显示的不同。为安全起见，这次登录已取消。如果有人让你扫这个码，请不要照做。",
    err_rate_limited_title: "操作太频繁",
    err_rate_limited_body: "请 {n} 秒后再试。",
    err_network_title: "网络错误",
    err_network_body: "无法连接登录服务，请检查网络后重试。",
    err_wechat_title: "微信服务暂时不可用",
    err_wechat_body: "与微信通信时出错，请稍后重试。",
    err_unavailable_title: "服务暂时不可用",
    err_unavailable_body: "登录服务正忙，请稍后重试。",
    err_generic_title: "出错了",
    err_generic_body: "请稍后重试。",
  },
  en: {
    scan_title: "Sign in by scanning",
    scan_intro: "Scan the QR code on the web page, then confirm the sign-in here.",
    scan_button: "Scan",
    scan_not_ours: "This is not a sign-in code of this Mini Program.",
    loading: "Reading the sign-in request…",
    confirm_title: "Confirm sign-in",
    confirm_to: "Sign in to",
    who_heading: "Who is asking",
    who_device: "Device",
    who_ip: "IP address",
    who_place: "Place",
    who_shown: "Code",
    shown_now: "shown just now",
    shown_secs: "shown {n} s ago",
    shown_mins: "shown {n} min ago",
    unknown_browser: "Unknown browser",
    unknown_place: "Unknown",
    mismatch_title: "Be careful",
    mismatch_country: "The computer asking is in {requester}, but your phone is in {scanner}. If you are not at that computer yourself, decline.",
    mismatch_datacenter: "The request comes from a data centre network, not a home or office one. If someone asked you to scan this code, decline.",
    match_heading: "Tap the number shown on the computer",
    match_hint: "Only the number on the computer's screen signs in; a wrong one cancels this sign-in.",
    profile_heading: "Profile (optional)",
    avatar_button: "Avatar",
    avatar_uploading: "Uploading the avatar…",
    avatar_failed: "The avatar could not be uploaded; you can skip it.",
    nickname_label: "Nickname",
    nickname_placeholder: "Your nickname",
    phone_heading: "Phone number",
    phone_button: "Share phone number",
    phone_done: "Phone number shared",
    phone_required: "This site needs your phone number to sign you in.",
    phone_optional: "Optional; you can skip it.",
    phone_denied: "The phone number was not shared.",
    confirm_button: "Confirm",
    decline_button: "Decline",
    working: "One moment…",
    result_title: "Signed in",
    result_body: "You are signed in to {app} on the computer.",
    result_phone_quota: "Your phone number could not be read this time: the Mini Program has used up today's phone checks. The sign-in went ahead.",
    declined_title: "Declined",
    declined_body: "The sign-in was cancelled; the computer is not signed in.",
    logins_heading: "Recent sign-ins",
    logins_none: "No sign-ins yet.",
    not_me_button: "This wasn't me",
    reported: "Reported; that sign-in was ended",
    report_failed: "The report failed; try again.",
    scan_again: "Scan again",
    retry: "Try again",
    err_expired_title: "The code has expired",
    err_expired_body: "Refresh the QR code on the computer and scan it again.",
    err_used_title: "The code was already used",
    err_used_body: "This QR code has already been scanned or used. Refresh it on the computer and scan again.",
    err_other_program_title: "Not for this Mini Program",
    err_other_program_body: "This QR code belongs to another Mini Program, or the site does not let your account sign in.",
    err_not_found_title: "Unknown code",
    err_not_found_body: "This QR code is not known. Refresh it on the computer and scan again.",
    err_wrong_match_title: "Wrong number: sign-in cancelled",
    err_wrong_match_body: "The number you tapped is not the one on the computer. To keep you safe the sign-in was cancelled. If someone asked you to scan this code, don't.",
    err_rate_limited_title: "Too many attempts",
    err_rate_limited_body: "Try again in {n} s.",
    err_network_title: "Network error",
    err_network_body: "The sign-in service cannot be reached. Check the network and try again.",
    err_wechat_title: "WeChat is not answering",
    err_wechat_body: "Something went wrong talking to WeChat. Try again in a moment.",
    err_unavailable_title: "Service unavailable",
    err_unavailable_body: "The sign-in service is busy. Try again in a moment.",
    err_generic_title: "Something went wrong",
    err_generic_body: "Try again in a moment.",
  },
};

function systemLanguage() {
  try {
    if (typeof wx.getAppBaseInfo === "function") return wx.getAppBaseInfo().language || "";
    return wx.getSystemInfoSync().language || "";
  } catch (_) {
    return "";
  }
}

/** "zh" or "en", from WeChat's language. */
function lang() {
  return /^zh/i.test(systemLanguage()) ? "zh" : "en";
}

/** The strings of WeChat's language, for a page's `data.t`. */
function strings() {
  return STRINGS[lang()];
}

/** `key` in WeChat's language with `{name}` placeholders filled from `vars`. */
function t(key, vars) {
  const s = strings()[key] || STRINGS.en[key] || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars && vars[k] != null ? String(vars[k]) : ""));
}

module.exports = { STRINGS, lang, strings, t };
