// An upscale from a previous output: open a finished txt2img result in the lightbox (keys, download),
// "Use in Upscale" makes it an input and opens Generate on Upscale with it; the result is twice its size.
import { args, assert, GENERATION, gql, run, signedInPage, until, waitForResult } from "./lib.mjs";

const { base, token } = args();
const [, , source] = process.argv.slice(2);

await run("upscale", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  let before = null;
  let id = "";

  await step("open the earlier generation's outputs in the lightbox", async () => {
    await page.goto(`${base}/generations/${source}`);
    ({ generation: before } = await gql(page, token, GENERATION, { id: source }));
    assert(before.images.length === 2, `expected a batch of 2: ${JSON.stringify(before.images)}`);
    await page.getByRole("button", { name: /Open result 1/ }).click();
    const box = page.getByTestId("lightbox");
    await box.waitFor();
    await until(async () => (await page.getByTestId("lightbox-count").textContent()) === "1 / 2", { message: "1 / 2" });
  });

  await step("keys move between outputs; each says its seed and batch index; Download is an attachment", async () => {
    await page.keyboard.press("ArrowRight");
    await until(async () => (await page.getByTestId("lightbox-count").textContent()) === "2 / 2", { message: "2 / 2" });
    const meta = (await page.getByTestId("lightbox-meta").textContent()) ?? "";
    assert(meta.includes(`seed ${before.images[1].seedValue}`) && meta.includes("batch 1"), `meta: ${meta}`);
    const href = await page.getByTestId("download").getAttribute("href");
    assert(href === before.images[1].downloadUrl, `download ${href}`);
    const disposition = await page.evaluate(async (url) => (await fetch(url)).headers.get("content-disposition"), href);
    assert(/^attachment; filename="txt2img-[0-9a-f]{8}-1-\d+\.png"$/.test(disposition ?? ""), `Content-Disposition: ${disposition}`);
    await page.keyboard.press("ArrowLeft");
    await until(async () => (await page.getByTestId("lightbox-count").textContent()) === "1 / 2", { message: "back to 1 / 2" });
  });

  await step('"Use in Upscale" opens Generate on Upscale with the output as its image', async () => {
    await page.getByRole("button", { name: "Use in Upscale" }).click();
    await page.waitForURL(`${base}/`);
    await until(async () => (await page.locator("#template").inputValue()) === "upscale", { message: "the Upscale template" });
    const preview = page.getByTestId("preview-image");
    await preview.waitFor({ timeout: 15000 });
    await until(() => preview.evaluate((img) => img.complete && img.naturalWidth === 64), { message: "the output as the input preview" });
  });

  await step("generate the upscale", async () => {
    await page.getByLabel("Factor", { exact: true }).fill("2");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    id = await waitForResult(page);
  });

  await step("the upscale is twice the earlier output's size", async () => {
    const { generation } = await gql(page, token, GENERATION, { id });
    assert(generation.template === "upscale" && generation.status === "SUCCEEDED", JSON.stringify(generation));
    const [image] = generation.images;
    assert(image.width === 128 && image.height === 128, `upscaled ${JSON.stringify(image)}`);
  });

  await step('"Vary seed" on the earlier output queues its parameters again with a new seed', async () => {
    await page.goto(`${base}/generations/${source}`);
    await page.getByRole("button", { name: /Open result 1/ }).click();
    await page.getByTestId("lightbox").waitFor();
    await page.getByRole("button", { name: "Vary seed" }).click();
    await page.waitForURL(`${base}/`);
    const next = await waitForResult(page);
    assert(next !== source && next !== id, "vary seed showed an old generation");
    const { generation } = await gql(page, token, GENERATION, { id: next });
    const was = before.parameters;
    const now = generation.parameters;
    assert(generation.template === "txt2img" && now.prompt === was.prompt && now.steps === was.steps && now.batch_size === was.batch_size, JSON.stringify(now));
    assert(now.seed !== was.seed, `the same seed ${now.seed}`);
  });
});
