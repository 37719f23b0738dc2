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

  await step("retry asks first, then runs again", async () => {
    const card = page.getByTestId("generation-card").first();
    await card.getByRole("button", { name: "Retry" }).click();
    await card.getByRole("group", { name: "Run again?" }).getByRole("button", { name: "Retry" }).click();
    await until(async () => ["QUEUED", "RUNNING"].includes(await card.getAttribute("data-status")), {
      message: "the retried card to queue or run",
    });
    await until(async () => (await card.getAttribute("data-status")) === "RUNNING", { message: "running again" });
    await card.getByRole("button", { name: "Cancel" }).click();
    await until(async () => (await card.getAttribute("data-status")) === "CANCELLED", { message: "cancelled again" });
  });

  await step("delete asks first, then removes the card", async () => {
    const cards = page.getByTestId("generation-card");
    const before = await cards.count();
    const card = cards.first();
    await card.getByRole("button", { name: "Delete" }).click();
    await card.getByRole("button", { name: "Keep" }).click();
    assert((await cards.count()) === before, "Keep deleted the card");
    await card.getByRole("button", { name: "Delete" }).click();
    await card.getByRole("group", { name: "Delete for good?" }).getByRole("button", { name: "Delete" }).click();
    await until(async () => (await cards.count()) === before - 1, { message: "the card to go" });
  });
});
