// The GraphQL playground at /graphql, offline: every request to a host other than this machine's is
// aborted. It must load from the app's own assets, fill the token, create a generation and follow
// it over the websocket to the terminal event. Screenshots at 1280×800 and 390×844.
import { args, artifact, assert, DESKTOP, offline, PHONE, run, until } from "./lib.mjs";

const { base, token } = args();

/**
 * Text of the CodeMirror editor number `index` inside `selector` (GraphiQL 4 keeps the instance on
 * the element). The editor tools hold two: 0 = variables, 1 = headers.
 */
const editorText = (page, selector, index = 0) =>
  page.evaluate(
    ([sel, i]) => document.querySelectorAll(`${sel} .CodeMirror`)[i]?.CodeMirror?.getValue() ?? "",
    [selector, index],
  );
const setEditor = (page, selector, index, text) =>
  page.evaluate(
    ([sel, i, value]) => document.querySelectorAll(`${sel} .CodeMirror`)[i].CodeMirror.setValue(value),
    [selector, index, text],
  );

/** Switch to an example tab and wait until its query is the editor's and its operation the one to run. */
async function openTab(page, name) {
  await page.locator(".graphiql-tab", { hasText: name }).click();
  await until(async () => new RegExp(`^(query|mutation|subscription) ${name}\\b`, "m").test(await editorText(page, ".graphiql-query-editor")), {
    message: `the ${name} tab's query in the editor`,
  });
  // GraphiQL reads the operation to run from the editor after a short debounce (editor.operationName).
  await until(
    () => page.evaluate((n) => document.querySelector(".graphiql-query-editor .CodeMirror")?.CodeMirror?.operationName === n, name),
    { message: `GraphiQL to pick the ${name} operation` },
  );
}

async function openPlayground(browser, viewport) {
  const context = await browser.newContext({ viewport });
  const blocked = await offline(context);
  await context.addInitScript((t) => {
    if (!window.localStorage.getItem("safelight.token")) window.localStorage.setItem("safelight.token", t);
  }, token);
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`[page error] ${err.message}`));
  const response = await page.goto(`${base}/graphql`);
  assert(response.ok(), `GET /graphql answered ${response.status()}`);
  await page.locator(".graphiql-container .graphiql-query-editor .CodeMirror").waitFor({ timeout: 20000 });
  return { context, page, blocked };
}

await run("graphiql", async ({ browser, step, setPage }) => {
  const { page, blocked } = await openPlayground(browser, DESKTOP);
  setPage(page);
  let id = "";

  await step("loads offline, dark, with the example tabs and the token", async () => {
    const tabs = await page.locator(".graphiql-tab").allTextContents();
    for (const name of ["Create", "Follow", "List"]) {
      assert(tabs.some((t) => t.includes(name)), `no ${name} tab: ${tabs.join(" | ")}`);
    }
    assert(await page.locator("body.graphiql-dark, .graphiql-dark").count(), "not in the dark theme");
    await page.getByRole("button", { name: "Headers" }).click();
    await until(async () => (await editorText(page, ".graphiql-editor-tool", 1)).includes(`Bearer ${token}`), {
      message: "the token in the headers editor",
    });
    await artifact(page, "graphiql");
  });

  await step("create a generation", async () => {
    await openTab(page, "Create");
    await page.locator(".graphiql-execute-button").click();
    const answer = await until(
      async () => {
        const text = await editorText(page, ".graphiql-response");
        return text.includes("GenerationPayload") ? text : null;
      },
      { timeout: 20000, message: "createGeneration's answer" },
    );
    id = JSON.parse(answer).data.createGeneration.generation.id;
    assert(id, `no id in ${answer}`);
  });

  await step("follow it over the websocket until it completes", async () => {
    await openTab(page, "Follow");
    await page.getByRole("button", { name: "Variables" }).click();
    await setEditor(page, ".graphiql-editor-tool", 0, JSON.stringify({ id }));
    await page.locator(".graphiql-execute-button").click();
    await until(
      async () => {
        const label = await page.locator(".graphiql-execute-button").getAttribute("aria-label");
        const text = await editorText(page, ".graphiql-response");
        return label?.startsWith("Execute") && text.includes('"terminal": true') ? text : null;
      },
      { timeout: 60000, message: "the terminal event and the subscription's completion" },
    );
    const last = JSON.parse(await editorText(page, ".graphiql-response")).data.generationEvents;
    assert(last.status === "SUCCEEDED" && last.terminal, `last event: ${JSON.stringify(last)}`);
    assert(blocked.length === 0, `the playground asked other hosts: ${blocked.join(", ")}`);
  });

  await step("usable at phone width", async () => {
    const phone = await openPlayground(browser, PHONE);
    setPage(phone.page);
    await openTab(phone.page, "List");
    await phone.page.locator(".graphiql-execute-button").click();
    await until(async () => (await editorText(phone.page, ".graphiql-response")).includes('"edges"'), {
      message: "the List query's answer",
    });
    const box = await phone.page.locator(".graphiql-execute-button").boundingBox();
    assert(box && box.x + box.width <= PHONE.width && box.y + box.height <= PHONE.height, `run button off screen: ${JSON.stringify(box)}`);
    const editor = await phone.page.locator(".graphiql-query-editor").boundingBox();
    const response = await phone.page.locator(".graphiql-response").boundingBox();
    assert(editor && editor.width > 250, `query editor ${JSON.stringify(editor)}`);
    assert(response && response.width > 250 && response.height > 150, `response pane ${JSON.stringify(response)}`);
    await artifact(phone.page, "graphiql");
    assert(phone.blocked.length === 0, `the playground asked other hosts: ${phone.blocked.join(", ")}`);
  });
});
