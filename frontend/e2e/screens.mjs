// Every page at 1280×800 and 390×844, with a screenshot of each state for people to look at
// (tests/browser/artifacts/), and the layout promises a browser can check: the Generate button on
// screen, no empty panel above the form on phones, the live panel's title clear of the sticky bar and
// without a focus ring after a submit, the finished image shown large, history cards that ellipsize
// inside their card and say "Queued on backend" while ComfyUI queues the prompt, the History tab lit on
// a detail page, one generationEvents subscription per detail page, the System page's title and a workers
// table that scrolls instead of being clipped.
import { args, artifact, assert, DESKTOP, PHONE, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();

const CREATE = `mutation ($input: GenerationInput!) {
  createGeneration(input: $input) { __typename ... on GenerationPayload { generation { id } } }
}`;
const CANCEL = `mutation ($id: ID!) { cancelGeneration(id: $id) { __typename } }`;

async function gql(page, query, variables) {
  return page.evaluate(
    async ([q, v, t]) => {
      const response = await fetch("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
        body: JSON.stringify({ query: q, variables: v }),
      });
      return response.json();
    },
    [query, variables, token],
  );
}

async function create(page, prompt, steps) {
  const result = await gql(page, CREATE, { input: { prompt, steps, width: 512, height: 512 } });
  const id = result.data?.createGeneration?.generation?.id;
  assert(id, `createGeneration: ${JSON.stringify(result)}`);
  return id;
}

const rect = (locator) => locator.evaluate((el) => el.getBoundingClientRect().toJSON());

await run("screens", async ({ browser, step, setPage }) => {
  for (const viewport of [DESKTOP, PHONE]) {
    const size = `${viewport.width}x${viewport.height}`;
    const phone = viewport === PHONE;
    const page = await signedInPage(browser, token, viewport);
    setPage(page);
    let done = "";
    let previewWidth = 0;

    await step(`${size}: Generate, idle`, async () => {
      await page.goto(`${base}/`);
      await page.evaluate(() => localStorage.removeItem("safelight.current"));
      await page.reload();
      await page.getByLabel("Prompt", { exact: true }).waitFor();
      const button = page.getByRole("button", { name: "Generate", exact: true });
      const box = await button.boundingBox();
      assert(box && box.y >= 0 && box.y + box.height <= viewport.height, `Generate button off screen: ${JSON.stringify(box)}`);
      const empty = page.getByTestId("live-empty");
      if (phone) assert(!(await empty.isVisible()), "an empty 'Nothing developing yet' panel sits above the form");
      else assert(await empty.isVisible(), "the empty live panel is missing on the desktop");
      await artifact(page, "generate-idle");
    });

    await step(`${size}: Generate, running`, async () => {
      await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk, volumetric fog, long exposure");
      await page.getByLabel("Steps", { exact: true }).fill("40");
      await page.getByRole("button", { name: "Generate", exact: true }).click();
      const bar = page.getByRole("progressbar");
      await until(async () => Number(await bar.getAttribute("aria-valuenow")) >= 20, { message: "progress past 20%" });
      const focus = await page.evaluate(() => {
        const el = document.activeElement;
        return { id: el?.id, outline: el ? getComputedStyle(el).outlineStyle : null };
      });
      assert(focus.id === "live-title", `focus after submit: ${JSON.stringify(focus)}`);
      assert(focus.outline === "none", `a focus ring around "Current generation": ${focus.outline}`);
      const top = await rect(page.locator(".top"));
      const title = await rect(page.locator("#live-title"));
      assert(title.top >= top.bottom - 1, `the panel's title is under the top bar: ${title.top} < ${top.bottom}`);
      const preview = page.getByTestId("preview");
      await preview.waitFor({ timeout: 10000 });
      previewWidth = (await rect(preview)).width;
      await artifact(page, "generate-running");
    });

    await step(`${size}: Generate, done`, async () => {
      const image = page.getByTestId("result-image").first();
      await image.waitFor({ timeout: 30000 });
      await until(() => image.evaluate((img) => img.complete && img.naturalWidth > 0), { message: "the image to load" });
      const shown = await image.evaluate((img) => ({ width: img.getBoundingClientRect().width, natural: img.naturalWidth }));
      const stage = await rect(page.locator(".stage"));
      const least = Math.min(300, shown.natural, stage.width - 20);
      assert(
        shown.width >= least && shown.width >= previewWidth - 1,
        `the finished image is ${shown.width} px wide (the preview was ${previewWidth}, at least ${least})`,
      );
      done = (await page.getByRole("link", { name: "Details" }).getAttribute("href")) ?? "";
      await page.locator("#live-title").scrollIntoViewIfNeeded();
      await artifact(page, "generate-done");
    });

    const slow = await create(page, "a slow one: the backend works on it while the next waits in its queue", 150);
    const queued = await create(page, "the next one, queued on the backend behind the slow one", 10);

    await step(`${size}: History`, async () => {
      await page.goto(`${base}/history`);
      const card = (id) => page.locator(`[data-testid="generation-card"]:has(a[href="/generations/${id}"])`);
      await until(async () => ((await card(slow).getByRole("progressbar").getAttribute("aria-valuenow")) ?? "0") > "0", {
        timeout: 20000,
        message: "the slow generation running",
      });
      await until(async () => (await card(queued).getByTestId("status-badge").textContent()) === "Queued on backend", {
        timeout: 20000,
        message: 'the second card saying "Queued on backend"',
      });
      for (const id of [slow, queued]) {
        const box = await rect(card(id));
        const track = await rect(card(id).locator(".progress-track"));
        assert(track.right <= box.right - 8, `the bar runs to the card's edge: ${track.right} vs ${box.right}`);
        const phase = card(id).getByTestId("phase");
        const style = await phase.evaluate((el) => ({
          overflow: getComputedStyle(el).textOverflow,
          right: el.getBoundingClientRect().right,
        }));
        assert(style.overflow === "ellipsis" && style.right <= box.right, `phase text clipped: ${JSON.stringify(style)}`);
      }
      await artifact(page, "history");
    });

    await step(`${size}: Detail of a running generation opens one subscription`, async () => {
      const subscribes = [];
      const onSocket = (ws) =>
        ws.on("framesent", ({ payload }) => {
          const message = JSON.parse(typeof payload === "string" ? payload : payload.toString());
          if (message.type === "subscribe" && message.payload?.query?.includes("generationEvents(")) subscribes.push(message.payload);
        });
      page.on("websocket", onSocket);
      await page.goto(`${base}/generations/${slow}`);
      await page.getByTestId("event-log").waitFor();
      await until(async () => Number(await page.getByRole("progressbar").getAttribute("aria-valuenow")) > 0, {
        message: "live progress on the detail page",
      });
      page.off("websocket", onSocket);
      const mine = subscribes.filter((p) => p.variables?.id === slow);
      assert(mine.length === 1, `subscriptions to the generation: ${JSON.stringify(mine.map((p) => p.variables))}`);
    });

    await step(`${size}: Detail`, async () => {
      await page.goto(`${base}${done}`);
      await page.getByTestId("seed-used").waitFor();
      const history = page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "History" });
      assert((await history.getAttribute("class"))?.includes("active"), "History tab not highlighted on a detail page");
      const actions = await rect(page.locator(".detail-actions"));
      const next = await rect(page.locator(".detail-actions + *, .detail-actions ~ .image-grid").first());
      assert(next.top - actions.bottom >= 12, `detail buttons touch what follows: gap ${next.top - actions.bottom}`);
      await artifact(page, "detail");
    });

    for (const id of [slow, queued]) await gql(page, CANCEL, { id });

    await step(`${size}: System`, async () => {
      await page.goto(`${base}/system`);
      await page.getByRole("heading", { name: "System", level: 1 }).waitFor();
      await page.locator(".table-wrap tbody tr").first().waitFor();
      const wrap = page.locator(".table-wrap");
      const box = await rect(wrap);
      assert(box.right <= viewport.width, `the workers table runs off the page: ${box.right}`);
      const scroll = await wrap.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, overflow: getComputedStyle(el).overflowX }));
      if (phone) assert(scroll.scroll > scroll.client && scroll.overflow === "auto", `table not scrollable: ${JSON.stringify(scroll)}`);
      await artifact(page, "system");
    });

    await page.context().close();
  }
});
