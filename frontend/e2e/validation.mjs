// Validation: the client's own check at the prompt field, and the API's typed ValidationError shown
// at the field it names (the form's limits are made stale on purpose, so only the server catches it).
import { args, assert, run, signedInPage } from "./lib.mjs";

const { base, token } = args();

await run("validation", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);

  await step("client: an empty prompt is flagged at the prompt", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).fill("");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    const error = page.locator('[data-field="prompt"]');
    await error.waitFor();
    assert((await error.textContent()) === "is required", await error.textContent());
    const invalid = await page.getByLabel("Prompt", { exact: true }).getAttribute("aria-invalid");
    assert(invalid === "true", "prompt not marked invalid");
    const focused = await page.evaluate(() => document.activeElement?.id);
    assert(focused === "field-prompt", `focus is on ${focused}`);
  });

  await step("server: a typed ValidationError lands at its field", async () => {
    // Pretend the page loaded an older template without the width rules.
    await page.route("**/graphql", async (route) => {
      const body = route.request().postDataJSON();
      if (body?.operationName !== "FormData") return route.continue();
      const response = await route.fetch();
      const json = await response.json();
      for (const t of json.data.templates) {
        for (const p of t.params) {
          if (p.name === "width") Object.assign(p, { multipleOf: null, min: null, max: null });
        }
      }
      await route.fulfill({ response, json });
    });
    await page.reload();
    await page.getByLabel("Prompt", { exact: true }).fill("a crooked picture frame");
    await page.getByLabel("Width", { exact: true }).fill("100");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    const error = page.locator('[data-field="width"]');
    await error.waitFor();
    const text = (await error.textContent()) ?? "";
    assert(/multiple of 8/.test(text), `width error: ${text}`);
    assert((await page.getByTestId("form-error").count()) === 1, "no form-level summary");
    assert((await page.getByTestId("live-panel").count()) === 0, "a generation was created");
    const described = await page.getByLabel("Width", { exact: true }).getAttribute("aria-describedby");
    assert(described?.includes("field-width-error"), "the error is not tied to the input");
  });

  await step("fixing the field clears its server error", async () => {
    await page.getByLabel("Width", { exact: true }).fill("128");
    assert((await page.locator('[data-field="width"]').count()) === 0, "stale error remains");
  });
});
