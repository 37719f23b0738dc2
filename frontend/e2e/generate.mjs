// Generate an image: the progress bar moves through its phases, previews arrive, the image appears.
import { args, assert, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();

await run("generate", async ({ browser, step, setPage }) => {
  const page = await signedInPage(browser, token);
  setPage(page);
  const seen = new Set();
  const percents = [];

  await step("open the form", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Prompt", { exact: true }).waitFor();
  });

  await step("submit", async () => {
    await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk, volumetric fog");
    await page.getByLabel("Steps", { exact: true }).fill("30");
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    await page.getByTestId("live-panel").waitFor();
  });

  await step("progress moves", async () => {
    const bar = page.getByRole("progressbar");
    await until(
      async () => {
        const now = Number(await bar.getAttribute("aria-valuenow"));
        const phase = (await page.getByTestId("phase").textContent()) ?? "";
        seen.add(phase.split(" · ")[0]);
        if (percents.at(-1) !== now) percents.push(now);
        return percents.filter((p) => p > 0 && p < 100).length >= 3;
      },
      { timeout: 20000, interval: 30, message: "three distinct progress values between 0 and 100" },
    );
    const rising = percents.every((p, i) => i === 0 || p >= percents[i - 1]);
    assert(rising, `progress went backwards: ${percents.join(", ")}`);
    assert([...seen].some((p) => p.startsWith("Running")), `never saw the running phase: ${[...seen].join(" | ")}`);
  });

  await step("a preview arrives", async () => {
    await page.getByTestId("preview").waitFor({ timeout: 15000 });
  });

  await step("the image appears", async () => {
    const image = page.getByTestId("result-image").first();
    await image.waitFor({ timeout: 30000 });
    await until(() => image.evaluate((img) => img.complete && img.naturalWidth > 0), { message: "the image to load" });
    assert((await page.getByTestId("phase").textContent()) === "Done", "phase is not Done");
    assert((await page.getByRole("progressbar").getAttribute("aria-valuenow")) === "100", "bar not at 100%");
    const elapsed = (await page.getByTestId("elapsed").textContent()) ?? "";
    assert(/\d/.test(elapsed), `no elapsed time: ${elapsed}`);
  });

  await step("the detail page shows the seed used", async () => {
    await page.getByRole("link", { name: "Details" }).click();
    const seed = await page.getByTestId("seed-used").textContent();
    assert(/^\d+$/.test(seed ?? ""), `seed used: ${seed}`);
    const log = page.getByTestId("event-log");
    await log.getByText("Done").waitFor();
    for (const text of ["Queued", "Running", /^Image 1 saved \(512×512, seed \d+, batch 0\)$/]) await log.getByText(text).waitFor();
    const seedUsed = seed;
    await page.getByRole("button", { name: "Use these settings again" }).click();
    await page.getByLabel("Prompt", { exact: true }).waitFor();
    const prompt = await page.getByLabel("Prompt", { exact: true }).inputValue();
    assert(prompt === "a lighthouse at dusk, volumetric fog", `prompt: ${prompt}`);
    assert((await page.getByLabel("Seed", { exact: true }).inputValue()) === seedUsed, "seed not carried over");
    assert((await page.getByLabel("Steps", { exact: true }).inputValue()) === "30", "steps not carried over");
    console.log(`phases seen: ${[...seen].join(" → ")}; percents: ${percents.join(", ")}`);
  });
});
