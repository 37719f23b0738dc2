// Cancel a running generation from the Generate page.
import { args, assert, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();

await run("cancel", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);

  await step("start a long generation", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).fill("a very slow sunrise");
    await page.getByLabel("Steps", { exact: true }).fill("150");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    await until(async () => ((await page.getByTestId("phase").textContent()) ?? "").startsWith("Running"), {
      timeout: 20000,
      message: "the running phase",
    });
  });

  await step("cancel it", async () => {
    await page.getByTestId("live-panel").getByRole("button", { name: "Cancel" }).click();
    await until(async () => (await page.getByTestId("phase").textContent()) === "Cancelled", {
      timeout: 20000,
      message: "the cancelled phase",
    });
    const badge = await page.getByTestId("live-panel").locator(".badge").textContent();
    assert(badge === "Cancelled", `badge says ${badge}`);
    assert((await page.getByTestId("result-image").count()) === 0, "a cancelled run shows no images");
  });

  await step("history shows it cancelled, with retry", async () => {
    await page.getByRole("link", { name: "History" }).click();
    const card = page.getByTestId("generation-card").first();
    await until(async () => (await card.getAttribute("data-status")) === "CANCELLED", { message: "a cancelled card" });
    await card.getByRole("button", { name: "Retry" }).waitFor();
  });
});
