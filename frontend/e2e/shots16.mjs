// Screenshots of issue 16's screens at 1280 and 390 px for people to look at (ARTIFACTS, or
// SAFELIGHT_ARTIFACTS): img2img and inpaint forms with their image (and a painted mask), the active
// list, a dropped PNG's notice, and the lightbox. Layout checks a browser can make: no horizontal
// scroll, the Generate button and the lightbox's actions on screen, the mask canvas over its image.
import { args, artifact, assert, chooseTemplate, DESKTOP, GENERATION, gql, PHONE, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();
const [, , source] = process.argv.slice(2);

const CREATE = `mutation ($input: GenerationInput!) {
  createGeneration(input: $input) { __typename ... on GenerationPayload { generation { id } } }
}`;

async function noSideScroll(page) {
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert(scroll <= client, `the page scrolls sideways: ${scroll} > ${client}`);
}

async function onScreen(page, locator, what) {
  const box = await locator.boundingBox();
  const { height, width } = page.viewportSize();
  assert(box && box.y >= 0 && box.y + box.height <= height + 1 && box.x >= 0 && box.x + box.width <= width + 1, `${what} off screen: ${JSON.stringify(box)}`);
}

await run("shots16", async ({ browser, step, setPage }) => {
  for (const viewport of [DESKTOP, PHONE]) {
    const size = `${viewport.width}x${viewport.height}`;
    const page = await signedInPage(browser, token, viewport);
    setPage(page);
    let made = null;
    let picture = null;

    await step(`${size}: img2img with its image`, async () => {
      await page.goto(`${base}/`);
      await page.evaluate(() => localStorage.removeItem("safelight.current"));
      await page.reload();
      await page.getByLabel("Prompt", { exact: true }).waitFor();
      ({ generation: made } = await gql(page, token, GENERATION, { id: source }));
      picture = Buffer.from(
        await page.evaluate(async (url) => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer())), made.images[0].url),
      );
      await chooseTemplate(page, "img2img");
      await page.locator("#field-image").setInputFiles({ name: "harbour.png", mimeType: "image/png", buffer: picture });
      await page.getByTestId("preview-image").waitFor({ timeout: 15000 });
      await page.getByLabel("Prompt", { exact: true }).fill("the same harbour at dawn, watercolour");
      await noSideScroll(page);
      await page.evaluate(() => window.scrollTo(0, 0));
      await artifact(page, "issue16-img2img");
    });

    await step(`${size}: inpaint with a painted mask`, async () => {
      await chooseTemplate(page, "inpaint");
      await page.locator("#field-image").setInputFiles({ name: "harbour.png", mimeType: "image/png", buffer: picture });
      const canvas = page.getByTestId("mask-canvas");
      await canvas.waitFor({ timeout: 15000 });
      await canvas.scrollIntoViewIfNeeded();
      const box = await canvas.boundingBox();
      const img = await page.locator(".mask-stage img").boundingBox();
      assert(Math.abs(box.width - img.width) < 1 && Math.abs(box.height - img.height) < 1, `canvas ${JSON.stringify(box)} over image ${JSON.stringify(img)}`);
      await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.35);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.45, { steps: 12 });
      await page.mouse.move(box.x + box.width * 0.55, box.y + box.height * 0.65, { steps: 12 });
      await page.mouse.up();
      await until(async () => (await page.getByTestId("mask-status").textContent())?.includes("Mask saved"), { message: "mask saved" });
      await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.25);
      await noSideScroll(page);
      await artifact(page, "issue16-inpaint");
      await onScreen(page, page.getByRole("button", { name: "Generate", exact: true }), "the Generate button");
    });

    await step(`${size}: queued and running, listed`, async () => {
      await chooseTemplate(page, "txt2img");
      for (const prompt of ["a slow harbour panorama", "a second harbour, queued", "a third, queued behind it"]) {
        await gql(page, token, CREATE, { input: { prompt, steps: 60, width: 512, height: 512 } });
      }
      await until(async () => (await page.getByTestId("active-item").count()) >= 3, { timeout: 15000, message: "three active" });
      await page.getByTestId("active-item").first().getByRole("button").click();
      await page.getByTestId("live-panel").waitFor();
      const badge = page.getByTestId("live-panel").getByTestId("status-badge");
      await until(async () => !["…", "..."].includes(((await badge.textContent()) ?? "").trim()), { message: "the live panel's status" });
      await until(async () => Number(await page.getByTestId("live-panel").getByRole("progressbar").getAttribute("aria-valuenow")) > 0, {
        timeout: 20000,
        message: "progress on the live panel",
      });
      await page.evaluate(() => window.scrollTo(0, 0));
      await noSideScroll(page);
      await artifact(page, "issue16-active");
    });

    await step(`${size}: a dropped PNG's parameters`, async () => {
      await page.evaluate(async (url) => {
        const bytes = await (await fetch(url)).arrayBuffer();
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "harbour-at-night.png", { type: "image/png" }));
        document.querySelector("main").dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }, made.images[0].url);
      await page.getByTestId("import-notice").waitFor();
      await page.evaluate(() => window.scrollTo(0, 0));
      await artifact(page, "issue16-png-dropped");
    });

    await step(`${size}: the lightbox`, async () => {
      await page.goto(`${base}/generations/${source}`);
      await page.getByRole("button", { name: /Open result 1/ }).click();
      const box = page.getByTestId("lightbox");
      await box.waitFor();
      const img = box.getByTestId("result-image");
      await until(() => img.evaluate((el) => el.complete && el.naturalWidth > 0), { message: "the full-size image" });
      await onScreen(page, page.getByTestId("download"), "Download");
      await onScreen(page, img, "the image");
      await artifact(page, "issue16-lightbox");
      await page.keyboard.press("+");
      await page.keyboard.press("+");
      await artifact(page, "issue16-lightbox-zoomed");
      await page.keyboard.press("Escape");
      await box.waitFor({ state: "detached" });
    });
    await page.context().close();
  }
});
