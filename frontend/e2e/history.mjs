// History: cursor pagination with "Load more"; a running generation keeps updating across a reload.
// argv[4]: the id of a generation that is running when the script starts; argv[5]: total count.
import { args, assert, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();
const runningId = process.argv[4];
const total = Number(process.argv[5]);

await run("history", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  const cards = page.getByTestId("generation-card");
  const running = page.locator(`[data-testid="generation-card"]:has(a[href="/generations/${runningId}"])`);

  await step("first page", async () => {
    await page.goto(`${base}/history`);
    await until(async () => (await cards.count()) === 24, { message: "24 cards" });
    await running.waitFor();
  });

  await step("load more until the end", async () => {
    const more = page.getByTestId("load-more");
    while ((await more.count()) > 0) {
      const before = await cards.count();
      await more.click();
      await until(async () => (await cards.count()) > before, { message: "more cards" });
      await until(async () => (await more.count()) === 0 || (await more.isEnabled()), { message: "load more settles" });
    }
    assert((await cards.count()) === total, `${await cards.count()} cards, expected ${total}`);
    const ids = await page.$$eval('[data-testid="generation-card"] a.card-media', (as) => as.map((a) => a.getAttribute("href")));
    assert(new Set(ids).size === ids.length, "a generation is listed twice");
  });

  await step("the running card moves live", async () => {
    const bar = running.getByRole("progressbar");
    const first = Number(await bar.getAttribute("aria-valuenow"));
    await until(async () => Number(await bar.getAttribute("aria-valuenow")) > first, { message: "live progress" });
  });

  let beforeReload = 0;
  await step("reload reattaches", async () => {
    beforeReload = Number(await running.getByRole("progressbar").getAttribute("aria-valuenow"));
    await page.reload();
    await running.waitFor();
    const status = await running.getAttribute("data-status");
    assert(status === "RUNNING", `after reload the card is ${status}`);
    const bar = running.getByRole("progressbar");
    await until(async () => Number(await bar.getAttribute("aria-valuenow")) > beforeReload, {
      message: "progress beyond the pre-reload value",
    });
  });

  await step("and sees it finish", async () => {
    await until(async () => (await running.getAttribute("data-status")) === "SUCCEEDED", {
      timeout: 30000,
      message: "the running card to succeed",
    });
    await running.locator("img").first().waitFor();
  });

  await step("search and filter", async () => {
    await page.getByLabel("Search prompts").fill("needle");
    await until(async () => (await cards.count()) === 1, { message: "one search hit" });
    await page.getByLabel("Search prompts").fill("");
    await page.getByLabel("Status").selectOption("SUCCEEDED");
    await until(async () => (await cards.count()) === 24, { message: "a first page of succeeded" });
  });
});
