// Shared helpers for the browser end-to-end scripts: launch Debian's Chromium, open a signed-in
// page, and save a screenshot under test-results/ when a step fails.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const RESULTS = join(here, "..", "test-results");
/** Screenshots every run writes for people to look at (gitignored): tests/browser/artifacts/. */
export const ARTIFACTS = process.env.SAFELIGHT_ARTIFACTS ?? join(here, "..", "..", "tests", "browser", "artifacts");
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

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * Abort every request to a host other than this machine's, as an offline (or firewalled) browser
 * would fail them; returns the list of URLs that were attempted.
 */
export async function offline(context) {
  const blocked = [];
  await context.route(
    (url) => !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) && url.protocol !== "data:",
    (route) => {
      blocked.push(route.request().url());
      return route.abort("internetdisconnected");
    },
  );
  return blocked;
}

/** A page whose localStorage already holds the API token, as if the user had entered it. */
export async function signedInPage(browser, token, viewport = { width: 1280, height: 900 }, options = {}) {
  const context = await browser.newContext({ viewport, ...options });
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

/** Save what the viewport shows now as ARTIFACTS/<name>-<width>x<height>.png. */
export async function artifact(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { width, height } = page.viewportSize();
  const file = join(ARTIFACTS, `${name}-${width}x${height}.png`);
  await page.screenshot({ path: file });
  console.log(`artifact: ${file}`);
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

/** Files the workflow specs upload (committed beside them). */
export const FIXTURES = join(here, "fixtures");

/** A GraphQL request from inside the page, with the token (what the app itself would send). */
export async function gql(page, token, query, variables = {}) {
  const result = await page.evaluate(
    async ([q, v, t]) => {
      const response = await fetch("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
        body: JSON.stringify({ query: q, variables: v }),
      });
      return response.json();
    },
    [query, variables, token],
  );
  if (result.errors) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

/** Choose a template in the Generate form's picker and wait for its form. */
export async function chooseTemplate(page, name) {
  await page.locator("#template").selectOption(name);
  await until(async () => (await page.locator("#template").inputValue()) === name, { message: `template ${name} chosen` });
}

/** Upload a file into an IMAGE field and wait for its preview (the server answered an input id). */
export async function uploadImage(page, field, path) {
  await page.locator(`#field-${field}`).setInputFiles(path);
  const preview = page.getByTestId(`preview-${field}`);
  await preview.waitFor({ timeout: 15000 });
  await until(() => preview.evaluate((img) => img.complete && img.naturalWidth > 0), { message: `the ${field} preview to load` });
}

/** Wait for the live panel's first result to load; returns the generation id (from its Details link). */
export async function waitForResult(page, { timeout = 45000 } = {}) {
  const panel = page.getByTestId("live-panel");
  const image = panel.getByTestId("result-image").first();
  await image.waitFor({ timeout });
  await until(() => image.evaluate((img) => img.complete && img.naturalWidth > 0), { message: "the result to load" });
  const href = (await panel.getByRole("link", { name: "Details" }).getAttribute("href")) ?? "";
  return href.split("/").pop();
}

export const GENERATION = `query ($id: ID!) {
  generation(id: $id) { id template status parameters images { kind width height batchIndex seedValue url downloadUrl } }
}`;

/** An input's bytes as the app reads them (GET /inputs/<id> with the token): size and a few pixels. */
export async function inputPixels(page, token, id, points) {
  return page.evaluate(
    async ([inputId, t, pts]) => {
      const response = await fetch(`/inputs/${inputId}`, { headers: { authorization: `Bearer ${t}` } });
      if (!response.ok) throw new Error(`GET /inputs/${inputId}: ${response.status}`);
      const bitmap = await createImageBitmap(await response.blob());
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      const values = pts.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data));
      return { width: bitmap.width, height: bitmap.height, values, type: response.headers.get("content-type") };
    },
    [id, token, points],
  );
}
