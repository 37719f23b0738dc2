// The websocket drops mid-run: a banner says so (and stays in view, however far the page is scrolled,
// while the server can't be reached), the app resubscribes with `after: <last seq>`, and the
// generation still completes with every image exactly once.
import { args, artifact, assert, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();

await run("reconnect", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  const subscribes = [];
  const sockets = [];
  let down = false; // while true, new sockets are closed at once, as if the API were unreachable
  await page.routeWebSocket(/\/graphql$/, (ws) => {
    if (down) {
      void ws.close({ code: 1012, reason: "test: still down" });
      return;
    }
    const server = ws.connectToServer();
    sockets.push({ ws, server });
    ws.onMessage((message) => {
      const parsed = JSON.parse(String(message));
      if (parsed.type === "subscribe") subscribes.push(parsed.payload);
      server.send(message);
    });
  });

  await step("start a generation", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).fill("a harbour in the rain");
    await page.getByLabel("Steps", { exact: true }).fill("60");
    await page.getByLabel("Batch size").fill("2");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    const bar = page.getByRole("progressbar");
    await until(async () => Number(await bar.getAttribute("aria-valuenow")) > 10, { message: "progress past 10%" });
  });

  await step("drop the socket", async () => {
    down = true;
    for (const { ws, server } of sockets.splice(0)) {
      await server.close({ code: 1012, reason: "test drop" }).catch(() => {});
      await ws.close({ code: 1012, reason: "test drop" }).catch(() => {});
    }
    await page.getByTestId("connection-banner").waitFor({ timeout: 5000 });
  });

  await step("the banner stays in view while the connection is down", async () => {
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await until(() => page.evaluate(() => window.scrollY > 100), { message: "the page scrolled" });
    const banner = page.getByTestId("connection-banner");
    const box = await banner.evaluate((el) => el.getBoundingClientRect().toJSON());
    assert(box.top >= 0 && box.bottom <= page.viewportSize().height, `banner out of view: ${JSON.stringify(box)}`);
    const text = (await banner.textContent()) ?? "";
    assert(/^Connection lost — reconnecting(?: in \d+ s\.|…) Live updates resume where they left off\.$/.test(text), `banner text: ${text}`);
    await artifact(page, "connection-lost");
    down = false;
  });

  await step("resume and finish", async () => {
    await page.getByTestId("result-image").nth(1).waitFor({ timeout: 30000 });
    await until(async () => (await page.getByTestId("connection-banner").count()) === 0, { message: "banner gone" });
    assert((await page.getByTestId("result-image").count()) === 2, "images duplicated or missing");
    assert((await page.getByTestId("phase").textContent()) === "Done", "not done");
  });

  await step("the resubscription asked for what it missed", async () => {
    const events = subscribes.filter((p) => p.operationName === "GenerationEvents");
    assert(events.length >= 2, `${events.length} GenerationEvents subscriptions`);
    const [first, resumed] = events;
    assert(first.variables.after == null, `first subscription had after=${first.variables.after}`);
    assert(Number.isInteger(resumed.variables.after) && resumed.variables.after > 0, `resumed with ${JSON.stringify(resumed.variables)}`);
    console.log(`resumed with after=${resumed.variables.after}`);
  });
});
