// Drop a PNG Safelight made (ComfyUI's prompt chunk inside) onto Generate: the form switches to the
// template it fits and takes its parameters. A PNG dropped on an image field is an upload instead.
import { args, assert, chooseTemplate, GENERATION, gql, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();
const [, , source] = process.argv.slice(2);

/** Drop the bytes at `url` as a file named `name` on the element `selector`, as a drag from the desktop would. */
async function dropFile(page, selector, url, name) {
  await page.evaluate(
    async ([sel, href, filename]) => {
      const bytes = await (await fetch(href)).arrayBuffer();
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], filename, { type: "image/png" }));
      const target = document.querySelector(sel);
      for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }
    },
    [selector, url, name],
  );
}

await run("pngdrop", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  let made = null;

  await step("open Generate on another template", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).waitFor();
    await chooseTemplate(page, "upscale");
    ({ generation: made } = await gql(page, token, GENERATION, { id: source }));
  });

  await step("drop the PNG on the page: txt2img with its parameters", async () => {
    await dropFile(page, "main", made.images[0].url, "safelight-result.png");
    const notice = page.getByTestId("import-notice");
    await notice.waitFor({ timeout: 10000 });
    const text = (await notice.textContent()) ?? "";
    assert(text.includes("safelight-result.png") && text.includes("Text to image"), `notice: ${text}`);
    await until(async () => (await page.locator("#template").inputValue()) === "txt2img", { message: "txt2img chosen" });
    const p = made.parameters;
    const expect = {
      Prompt: p.prompt,
      "Negative prompt": p.negative_prompt,
      Steps: String(p.steps),
      Seed: String(made.images[0].seedValue),
      Width: String(p.width),
      "CFG scale": String(p.cfg),
    };
    for (const [label, value] of Object.entries(expect)) {
      const shown = await page.getByLabel(label, { exact: true }).inputValue();
      assert(shown === value, `${label}: ${shown} (expected ${value})`);
    }
  });

  await step("a file that holds no workflow says so", async () => {
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(["hello"], "notes.txt", { type: "text/plain" }));
      document.querySelector("main").dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: transfer }));
    });
    await until(async () => ((await page.getByTestId("import-notice").textContent()) ?? "").includes("notes.txt"), {
      message: "the notice about notes.txt",
    });
    assert((await page.getByTestId("import-notice").getAttribute("role")) === "alert", "not shown as an error");
  });

  await step("the same PNG dropped on img2img's image field is an upload, not an import", async () => {
    await page.getByRole("button", { name: "Dismiss" }).first().click();
    await chooseTemplate(page, "img2img");
    await dropFile(page, '[data-testid="drop-image"]', made.images[0].url, "as-input.png");
    await page.getByTestId("preview-image").waitFor({ timeout: 15000 });
    assert((await page.getByTestId("import-notice").count()) === 0, "the drop on the field also loaded the workflow");
    assert((await page.locator("#template").inputValue()) === "img2img", "the template changed");
  });
});
