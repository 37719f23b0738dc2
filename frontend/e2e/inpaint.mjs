// Inpaint: upload an image, paint a mask over it (brush, eraser), generate. The mask the API stored is
// a PNG at the image's pixel size, white where painted and black elsewhere.
import { join } from "node:path";
import {
  args,
  assert,
  chooseTemplate,
  FIXTURES,
  GENERATION,
  gql,
  inputPixels,
  run,
  signedInPage,
  until,
  uploadImage,
  waitForResult,
} from "./lib.mjs";

const { base, token } = args();

/** Drag the pointer across the canvas through fractions of its box. */
async function stroke(page, canvas, points) {
  const box = await canvas.boundingBox();
  const at = ([fx, fy]) => [box.x + fx * box.width, box.y + fy * box.height];
  const [first, ...rest] = points.map(at);
  await page.mouse.move(...first);
  await page.mouse.down();
  for (const p of rest) await page.mouse.move(...p, { steps: 6 });
  await page.mouse.up();
}

await run("inpaint", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  let id = "";

  await step("open inpaint, the mask waits for an image", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).waitFor();
    await chooseTemplate(page, "inpaint");
    await page.getByText("Choose the image first: the mask is painted over it.").waitFor();
  });

  await step("upload the picture; the painter shows it at its size", async () => {
    await uploadImage(page, "image", join(FIXTURES, "photo.png"));
    await page.getByTestId("mask-canvas").waitFor();
    const status = (await page.getByTestId("mask-status").textContent()) ?? "";
    assert(status.includes("96×64"), `painter status: ${status}`);
  });

  await step("paint a band across the middle, erase its left end", async () => {
    const canvas = page.getByTestId("mask-canvas");
    await stroke(page, canvas, [
      [0.1, 0.5],
      [0.5, 0.5],
      [0.9, 0.5],
    ]);
    await page.getByRole("button", { name: "Eraser" }).click();
    await stroke(page, canvas, [
      [0.05, 0.5],
      [0.2, 0.5],
    ]);
    await until(async () => (await page.getByTestId("mask-status").textContent())?.includes("Mask saved"), {
      timeout: 15000,
      message: "the mask to be saved",
    });
  });

  await step("generate", async () => {
    await page.getByLabel("Prompt", { exact: true }).fill("a red door in the wall");
    await page.getByLabel("Steps", { exact: true }).fill("3");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    id = await waitForResult(page);
  });

  await step("the generation ran with the image and its mask; the mask is white on black at 96×64", async () => {
    const { generation } = await gql(page, token, GENERATION, { id });
    assert(generation.template === "inpaint" && generation.status === "SUCCEEDED", JSON.stringify(generation));
    const { image, mask } = generation.parameters;
    assert(typeof mask === "string" && mask !== image, `parameters: ${JSON.stringify(generation.parameters)}`);
    const pixels = await inputPixels(page, token, mask, [
      [72, 32], // painted
      [48, 32], // painted
      [6, 32], // erased
      [48, 5], // never painted
      [90, 60],
    ]);
    assert(pixels.width === 96 && pixels.height === 64, `mask size ${pixels.width}×${pixels.height}`);
    const gray = pixels.values.map(([r, g, b]) => (r === g && g === b ? r : -1));
    assert(JSON.stringify(gray) === JSON.stringify([255, 255, 0, 0, 0]), `mask pixels ${JSON.stringify(pixels.values)}`);
    const [result] = generation.images;
    assert(result.width === 96 && result.height === 64, `result ${JSON.stringify(result)}`);
  });
});
