// A failed generation: its card and detail page ask "Run again?" in the neutral style, with the
// answer buttons side by side inside the card, and the detail page names the failing node.
// argv[4]: the failed generation's id.
import { args, artifact, assert, DESKTOP, PHONE, run, signedInPage } from "./lib.mjs";

const { base, token } = args();
const id = process.argv[4];

const rect = (locator) => locator.evaluate((el) => el.getBoundingClientRect().toJSON());

async function askRunAgain(scope, within) {
  await scope.getByRole("button", { name: "Retry" }).click();
  const group = scope.getByRole("group", { name: "Run again?" });
  await group.waitFor();
  const confirm = group.getByRole("button", { name: "Retry" });
  const keep = group.getByRole("button", { name: "Keep" });
  const style = (await confirm.getAttribute("class")) ?? "";
  assert(!style.includes("button-danger"), `"Run again?" in the danger style: ${style}`);
  const [a, b] = [await rect(confirm), await rect(keep)];
  assert(Math.abs(a.top - b.top) < 2, `the answer buttons wrap: ${a.top} vs ${b.top}`);
  if (within) {
    const box = await rect(within);
    assert(b.right <= box.right, `the buttons run out of the card: ${b.right} > ${box.right}`);
  }
  return keep;
}

await run("failed", async ({ browser, step, setPage }) => {
  for (const viewport of [DESKTOP, PHONE]) {
    const size = `${viewport.width}x${viewport.height}`;
    const page = await signedInPage(browser, token, viewport);
    setPage(page);

    await step(`${size}: the history card asks "Run again?"`, async () => {
      await page.goto(`${base}/history`);
      const card = page.locator(`[data-testid="generation-card"]:has(a[href="/generations/${id}"])`);
      await card.getByText("Failed", { exact: true }).waitFor();
      const keep = await askRunAgain(card, card);
      await artifact(page, "history-run-again");
      await keep.click();
    });

    await step(`${size}: the detail page`, async () => {
      await page.goto(`${base}/generations/${id}`);
      const error = page.getByTestId("detail-error");
      await error.waitFor();
      assert(/Failing node/.test((await error.textContent()) ?? ""), "the failing node is not named");
      const keep = await askRunAgain(page.locator(".detail-actions"), null);
      await artifact(page, "detail-failed");
      await keep.click();
    });
    await page.context().close();
  }
});
