// Upload an image into img2img's drop zone, generate, and get a result the size of that image.
import { join } from "node:path";
import { args, assert, chooseTemplate, FIXTURES, GENERATION, gql, run, signedInPage, uploadImage, waitForResult } from "./lib.mjs";

const { base, token } = args();

await run("img2img", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  let id = "";

  await step("open img2img", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).waitFor();
    await chooseTemplate(page, "img2img");
    await page.getByTestId("drop-image").waitFor();
  });

  await step("a file that is not an image gets the server's typed error", async () => {
    await page.locator("#field-image").setInputFiles({ name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not really a picture") });
    const error = page.getByTestId("upload-error-image");
    await error.waitFor({ timeout: 15000 });
    const text = (await error.textContent()) ?? "";
    assert(text.includes("NOT_AN_IMAGE"), `error shown: ${text}`);
  });

  await step("upload the picture", async () => {
    await uploadImage(page, "image", join(FIXTURES, "photo.png"));
    const meta = (await page.getByTestId("drop-image").textContent()) ?? "";
    assert(meta.includes("photo.png") && meta.includes("96×64"), `drop zone says: ${meta}`);
    assert((await page.getByTestId("upload-error-image").count()) === 0, "the old error stays after a good upload");
  });

  await step("generate", async () => {
    await page.getByLabel("Prompt", { exact: true }).fill("the same scene as an oil painting");
    await page.getByLabel("Steps", { exact: true }).fill("3");
    await page.getByLabel("Denoise", { exact: true }).fill("0.5");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    id = await waitForResult(page);
  });

  await step("the result is img2img's, from the uploaded input, at its size", async () => {
    const { generation } = await gql(page, token, GENERATION, { id });
    assert(generation.template === "img2img" && generation.status === "SUCCEEDED", JSON.stringify(generation));
    assert(typeof generation.parameters.image === "string" && generation.parameters.image.length > 10, JSON.stringify(generation.parameters));
    assert(generation.parameters.denoise === 0.5, `denoise ${generation.parameters.denoise}`);
    const [image] = generation.images;
    assert(image.kind === "IMAGE" && image.width === 96 && image.height === 64, `result ${JSON.stringify(image)}`);
  });
});
