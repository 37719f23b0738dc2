// Outputs that are not still images, in the viewer: animations as images, a sound with <audio>
// controls, a text as preformatted text; each with its seed, batch index and download link.
import { args, artifact, assert, DESKTOP, GENERATION, gql, PHONE, run, signedInPage, until } from "./lib.mjs";

const { base, token } = args();
const [, , source] = process.argv.slice(2);

await run("outputs", async ({ browser, step, setPage }) => {
  for (const viewport of [DESKTOP, PHONE]) {
    const size = `${viewport.width}x${viewport.height}`;
    const page = await signedInPage(browser, token, viewport);
    setPage(page);
    let outputs = [];

    await step(`${size}: the detail page's grid shows each kind`, async () => {
      await page.goto(`${base}/generations/${source}`);
      ({ generation: { images: outputs } } = await gql(page, token, GENERATION, { id: source }));
      const grid = page.getByRole("list", { name: "Results" });
      await grid.waitFor();
      await until(async () => (await grid.locator("li").count()) === outputs.length, { message: `${outputs.length} outputs` });
      const pictures = grid.getByTestId("result-image");
      await until(async () => (await pictures.count()) === 2, { message: "two animations as images" });
      for (let i = 0; i < 2; i++) {
        await until(() => pictures.nth(i).evaluate((img) => img.complete && img.naturalWidth > 0), { message: `animation ${i} loads` });
      }
      assert((await grid.getByTestId("result-audio").count()) === 1, "no audio tile");
      const text = (await grid.getByTestId("result-text").textContent()) ?? "";
      assert(text.includes("héllo, wörld"), `text tile: ${text}`);
      await artifact(page, "issue16-outputs-detail");
    });

    await step(`${size}: the lightbox shows each by its kind`, async () => {
      await page.getByRole("button", { name: /Open result 1/ }).click();
      const box = page.getByTestId("lightbox");
      await box.waitFor();
      for (let i = 0; i < outputs.length; i++) {
        const output = outputs[i];
        await until(async () => (await page.getByTestId("lightbox-count").textContent()) === `${i + 1} / ${outputs.length}`, {
          message: `output ${i + 1}`,
        });
        const meta = (await page.getByTestId("lightbox-meta").textContent()) ?? "";
        assert(meta.includes(`batch ${output.batchIndex}`) && meta.includes(`seed ${output.seedValue}`), `meta: ${meta}`);
        assert((await page.getByTestId("download").getAttribute("href")) === output.downloadUrl, "download link");
        if (output.kind === "ANIMATION") {
          const img = box.getByTestId("result-image");
          await until(() => img.evaluate((el) => el.complete && el.naturalWidth > 0), { message: "the animation loads" });
        } else if (output.kind === "AUDIO") {
          const audio = box.getByTestId("result-audio");
          const shown = await audio.evaluate((el) => ({ controls: el.controls, src: el.src }));
          assert(shown.controls && shown.src === new URL(output.url, base).href, `audio: ${JSON.stringify(shown)} for ${output.url}`);
          await until(() => audio.evaluate((el) => el.readyState >= 1 && el.duration > 0.5), { message: "the sound's metadata" });
          await artifact(page, "issue16-lightbox-audio");
        } else if (output.kind === "TEXT") {
          const pre = box.getByTestId("result-text");
          assert((await pre.evaluate((el) => el.tagName)) === "PRE", "text not preformatted");
          assert(((await pre.textContent()) ?? "").includes("second line"), "the text");
          await artifact(page, "issue16-lightbox-text");
        }
        if (i < outputs.length - 1) await page.keyboard.press("ArrowRight");
      }
      await page.keyboard.press("Escape");
      await box.waitFor({ state: "detached" });
    });
    await page.context().close();
  }
});
