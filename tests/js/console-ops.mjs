// The console's operations pages in a real browser: signs in, visits the users list and a
// user, the audit log, keys, API keys (creating one: the key is shown once), the admins and one
// admin, WeChat diagnostics and the set-password page, in Chinese and English at 1280×800 and
// 375×667; each page must have its heading, render Chinese text in Chinese and never be wider
// than the screen. Screenshots go to the artifacts folder.
import { launch, artifact, must } from "./lib/browser.mjs";

const { SCANGATE_URL, USERNAME, PASSWORD, USER_ID, APPID, SET_PASSWORD_PATH } = process.env;
must(SCANGATE_URL && USERNAME && PASSWORD && USER_ID && APPID && SET_PASSWORD_PATH, "the environment is set");

const pages = [
  ["users", "/admin/users?q="],
  ["user", `/admin/users/${USER_ID}`],
  ["user-merge", `/admin/users/${USER_ID}/merge`],
  ["user-block", `/admin/users/${USER_ID}/block`],
  ["audit", "/admin/audit"],
  ["keys", "/admin/keys"],
  ["api-keys", "/admin/api-keys"],
  ["admins", "/admin/admins"],
  ["admin", `/admin/admins/${USERNAME}`],
  ["diagnostics", `/admin/miniprograms/${APPID}/diagnostics`],
];

const context = await launch();
try {
  const page = await context.newPage();
  await page.goto(`${SCANGATE_URL}/admin/sign-in`);
  await page.fill("#username", USERNAME);
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${SCANGATE_URL}/admin`);

  for (const lang of ["zh", "en"]) {
    for (const size of [{ width: 1280, height: 800 }, { width: 375, height: 667 }]) {
      await page.setViewportSize(size);
      for (const [name, path] of pages) {
        const sep = path.includes("?") ? "&" : "?";
        await page.goto(`${SCANGATE_URL}${path}${sep}lang=${lang}`);
        const h1 = (await page.textContent("h1")) || "";
        must(h1.trim().length > 0, `${name}: a heading`);
        if (lang === "zh") must(/[\u4e00-\u9fff]/.test(await page.textContent("main")), `${name}: Chinese text`);
        const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        must(wide <= 0, `${name} ${lang} ${size.width}: ${wide}px wider than the screen`);
        await page.screenshot({ path: artifact(`console-ops-${name}-${lang}-${size.width}.png`), fullPage: true });
      }
      // An API key made in the browser is shown once, with its copy button.
      if (size.width === 1280) {
        await page.goto(`${SCANGATE_URL}/admin/api-keys?lang=${lang}`);
        await page.fill("#name", `browser ${lang}`);
        await page.click("form[action='/admin/api-keys'] button[type=submit]");
        const key = (await page.textContent("#new-key")).trim();
        must(key.startsWith("sgk_"), "the new key is shown");
        must(await page.isVisible("[data-copy=new-key]"), "the copy button is shown");
        await page.screenshot({ path: artifact(`console-ops-api-key-created-${lang}.png`), fullPage: true });
      }
    }
  }

  // The set-password page, reached without a session.
  const fresh = await launch();
  try {
    const anonymous = await fresh.newPage();
    for (const lang of ["zh", "en"]) {
      for (const size of [{ width: 1280, height: 800 }, { width: 375, height: 667 }]) {
        await anonymous.setViewportSize(size);
        await anonymous.goto(`${SCANGATE_URL}${SET_PASSWORD_PATH}?lang=${lang}`);
        must(await anonymous.isVisible("#password"), "the set-password form");
        const wide = await anonymous.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        must(wide <= 0, `set-password ${lang} ${size.width}: ${wide}px too wide`);
        await anonymous.screenshot({ path: artifact(`console-ops-set-password-${lang}-${size.width}.png`), fullPage: true });
      }
    }
  } finally {
    await fresh.close();
  }
  console.log("console ops pages: ok");
} finally {
  await context.close();
}
