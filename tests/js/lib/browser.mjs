// Headless Debian Chromium for the browser tests, with the flags a closed network needs.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/// `options` adds to the launch options (`{ javaScriptEnabled: false }`).
export async function launch(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "scangate-chromium-"));
  return chromium.launchPersistentContext(userDataDir, {
    ...options,
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/// Where screenshots go (set by the Rust harness).
export function artifact(name) {
  return join(process.env.ARTIFACTS_DIR || ".", name);
}

export function must(cond, message) {
  if (!cond) throw new Error(message);
}
