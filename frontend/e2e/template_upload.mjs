// An admin brings a workflow saved by ComfyUI's editor (UI format): open it on Generate, review the
// proposed parameters, save it as a template; the picker selects it and its form can generate.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { args, assert, dirname, run, signedInPage, until, waitForResult } from "./lib.mjs";
import { fileURLToPath } from "node:url";

const { base, token } = args();
const [, , name] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const saved = readFileSync(join(here, "..", "..", "tests", "comfy", "ui_workflows", "txt2img.ui.json"));

await run("template_upload", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);

  await step("open the editor's save on Generate: the review opens", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).waitFor();
    await page.locator("#open-workflow").setInputFiles({ name: "My Lighthouse.json", mimeType: "application/json", buffer: saved });
    const form = page.getByTestId("save-template");
    await form.waitFor({ timeout: 10000 });
    await until(async () => ((await form.textContent()) ?? "").includes("proposed parameters"), {
      timeout: 15000,
      message: "the proposal",
    });
    const text = (await form.textContent()) ?? "";
    assert(text.includes("Editor workflow") && /prompt \(string\)/.test(text) && /seed \(seed\)/.test(text), `review: ${text}`);
    assert((await form.getByLabel("Name").inputValue()) === "my-lighthouse", "name not suggested from the file name");
  });

  await step("save it under a new name; the picker selects it", async () => {
    const form = page.getByTestId("save-template");
    await form.getByLabel("Name").fill(name);
    await form.getByLabel("Title").fill("My lighthouse");
    await form.getByRole("button", { name: "Save template" }).click();
    await until(async () => ((await page.getByTestId("import-notice").textContent()) ?? "").includes(`Saved the template ${name}`), {
      timeout: 15000,
      message: "the saved notice",
    });
    await until(async () => (await page.locator("#template").inputValue()) === name, { message: "the new template selected" });
    assert((await page.locator("#form-title").textContent()) === "My lighthouse", "the form's title");
  });

  await step("a second save under a shipped name is refused at its field", async () => {
    await page.locator("#open-workflow").setInputFiles({ name: "again.json", mimeType: "application/json", buffer: saved });
    const form = page.getByTestId("save-template");
    await form.waitFor();
    await form.getByLabel("Name").fill("txt2img");
    await form.getByRole("button", { name: "Save template" }).click();
    await form.getByRole("alert").waitFor({ timeout: 10000 });
    const text = (await form.getByRole("alert").textContent()) ?? "";
    assert(/txt2img/.test(text), `refusal: ${text}`);
    await form.getByRole("button", { name: "Not now" }).click();
  });

  await step("its form generates", async () => {
    await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse from a template saved a minute ago");
    const steps = page.getByLabel("Steps", { exact: true });
    if (await steps.count()) await steps.fill("2");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    await waitForResult(page);
  });
});
