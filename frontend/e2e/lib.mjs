// Shared helpers for the browser end-to-end scripts: launch Debian's Chromium, open a signed-in
// page, and save a screenshot under test-results/ when a step fails.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const RESULTS = join(here, "..", "test-results");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function args() {
  const [base, token] = process.argv.slice(2);
  if (!base || !token) {
    console.error("usage: node <spec>.mjs <api base url> <token>");
    process.exit(2);
  }
  return { base: base.replace(/\/$/, ""), token };
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/** A page whose localStorage already holds the API token, as if the user had entered it. */
export async function signedInPage(browser, token, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript((t) => {
    if (!window.localStorage.getItem("safelight.token")) window.localStorage.setItem("safelight.token", t);
  }, token);
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`[page error] ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.error(`[console] ${msg.text()}`);
  });
  return page;
}

/**
 * Run named steps in order against one page; on the first failure save a full-page screenshot
 * (test-results/<spec>-<step>.png), print the error, and exit 1.
 */
export async function run(spec, body) {
  const browser = await launch();
  let current = "setup";
  let page = null;
  const step = async (name, fn) => {
    current = name;
    const started = Date.now();
    await fn();
    console.log(`ok  ${name} (${Date.now() - started} ms)`);
  };
  try {
    await body({ browser, step, setPage: (p) => (page = p) });
  } catch (err) {
    console.error(`FAIL ${spec} at "${current}": ${err?.stack ?? err}`);
    if (page) {
      mkdirSync(RESULTS, { recursive: true });
      const file = join(RESULTS, `${spec}-${current.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`screenshot: ${file}`);
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export async function screenshot(page, name) {
  mkdirSync(RESULTS, { recursive: true });
  await page.screenshot({ path: join(RESULTS, `${name}.png`), fullPage: true });
}

/** Poll `fn` until it returns a truthy value or `timeout` ms pass. */
export async function until(fn, { timeout = 15000, interval = 50, message = "condition" } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${message}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export { dirname };
