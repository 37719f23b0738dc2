// Dev mode (the API hands local browsers the dev user's token at /dev/token): the app signs in by
// itself and the playground has the token filled in; "Sign out" sticks across a reload, says that dev
// mode would sign you in, and "Continue as the dev user" signs back in. argv[3] is the dev token.
import { args, artifact, assert, DESKTOP, offline, run, until } from "./lib.mjs";

const { base, token } = args();

await run("devmode", async ({ browser, step, setPage }) => {
  const context = await browser.newContext({ viewport: DESKTOP });
  await offline(context);
  const page = await context.newPage();
  setPage(page);

  await step("the playground has the dev token filled in", async () => {
    await page.goto(`${base}/graphql`);
    await page.locator(".graphiql-container .graphiql-query-editor .CodeMirror").waitFor({ timeout: 20000 });
    await until(
      () =>
        page.evaluate(
          (t) =>
            [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].some((el) =>
              el.CodeMirror?.getValue().includes(`Bearer ${t}`),
            ),
          token,
        ),
      { message: "the dev token in the headers editor" },
    );
  });

  await step("the app signs in by itself", async () => {
    await page.goto(`${base}/`);
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  });

  await step("sign-out sticks across a reload and says why dev mode signed you in", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    await page.reload();
    await page.getByLabel("API token").waitFor();
    const note = page.getByTestId("dev-signin");
    await note.waitFor();
    assert(/dev mode/.test((await note.textContent()) ?? ""), "no word of dev mode");
    assert((await page.getByRole("button", { name: "Sign out" }).count()) === 0, "signed in again after a reload");
    await artifact(page, "signed-out-dev-mode");
  });

  await step("continue as the dev user", async () => {
    await page.getByRole("button", { name: "Continue as the dev user" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await page.reload();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  });
});
