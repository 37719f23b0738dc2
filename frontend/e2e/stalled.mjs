// ComfyUI went away mid-run (the test killed it): the live panel and the history card show that the
// job waits for a backend, why, and a countdown to the next try; no RUNNING badge, no time estimate.
// argv[4]: the generation's id.
import { args, artifact, assert, DESKTOP, PHONE, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();
const id = process.argv[4];

async function countsDown(locator) {
  const first = (await locator.textContent()) ?? "";
  assert(/retry in \d|retrying now/i.test(first), `no countdown in "${first}"`);
  await until(async () => ((await locator.textContent()) ?? "") !== first, { timeout: 5000, message: `"${first}" to change` });
}

await run("stalled", async ({ browser, step, setPage }) => {
  for (const viewport of [DESKTOP, PHONE]) {
    const size = `${viewport.width}x${viewport.height}`;
    const page = await signedInPage(browser, token, viewport);
    setPage(page);
    await page.addInitScript((gid) => localStorage.setItem("safelight.current", gid), id);

    await step(`${size}: the live panel`, async () => {
      await page.goto(`${base}/`);
      const panel = page.getByTestId("live-panel");
      await until(async () => (await panel.getByTestId("status-badge").textContent()) === "No backend", {
        timeout: 20000,
        message: 'the badge to say "No backend"',
      });
      const reason = (await panel.getByTestId("stall-reason").textContent()) ?? "";
      assert(/unreachable/i.test(reason) && /Gives up in/.test(reason), `reason: ${reason}`);
      await countsDown(panel.getByTestId("phase"));
      assert((await panel.getByText(/left$/).count()) === 0, "a time estimate while nothing moves");
      await artifact(page, "stalled-generate");
    });

    await step(`${size}: the history card`, async () => {
      await page.goto(`${base}/history`);
      const card = page.locator(`[data-testid="generation-card"]:has(a[href="/generations/${id}"])`);
      await until(async () => (await card.getByTestId("status-badge").textContent()) === "No backend", {
        timeout: 20000,
        message: "the card's badge",
      });
      const reason = card.getByTestId("stall-reason");
      assert(/unreachable/i.test((await reason.textContent()) ?? ""), "no reason on the card");
      const box = await card.evaluate((el) => el.getBoundingClientRect().toJSON());
      const line = await reason.evaluate((el) => ({
        right: el.getBoundingClientRect().right,
        overflow: getComputedStyle(el).textOverflow,
      }));
      assert(line.right <= box.right && line.overflow === "ellipsis", `reason overflows the card: ${JSON.stringify(line)}`);
      await countsDown(card.getByTestId("phase"));
      await artifact(page, "stalled-history");
    });
    await page.context().close();
  }
});
