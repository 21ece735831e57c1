// The toolchain the other programs stand on: the SDK imports and Chromium renders a page.
import { AuthenticationClient } from "authing-js-sdk";
import { launch, must } from "./lib/browser.mjs";

must(typeof AuthenticationClient === "function", "authing-js-sdk exports AuthenticationClient");
const context = await launch();
try {
  const page = await context.newPage();
  await page.setContent("<p id=t>扫码登录</p>");
  must((await page.textContent("#t")) === "扫码登录", "Chromium renders the page");
} finally {
  await context.close();
}
console.log("ok");
