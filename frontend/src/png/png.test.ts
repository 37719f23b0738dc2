import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeGrayPng, encodeGrayPng, readPng, PngError } from "./png";

const fixture = (name: string) => new Uint8Array(readFileSync(join(import.meta.dirname, "fixtures", name)));

describe("readPng", () => {
  it("reads ComfyUI's prompt and workflow tEXt chunks from a real PNG (written by Pillow, as SaveImage does)", async () => {
    const png = await readPng(fixture("comfyui.png"));
    expect(png.width).toBe(8);
    expect(png.height).toBe(6);
    const prompt = JSON.parse(png.text.get("prompt") ?? "null");
    expect(prompt["6"].inputs.text).toBe("a lighthouse at dusk");
    expect(prompt["3"].inputs.seed).toBe(123456789);
    expect(JSON.parse(png.text.get("workflow") ?? "null").nodes[0].type).toBe("KSampler");
  });

  it("inflates zTXt and compressed UTF-8 iTXt chunks", async () => {
    const png = await readPng(fixture("texts.png"));
    expect(png.text.get("comment")).toBe("héllo ✓ 灯台");
    expect(png.text.get("parameters")).toBe("zipped text ".repeat(20));
  });

  it("refuses what is not a PNG, and files and texts past the limits", async () => {
    await expect(readPng(new TextEncoder().encode("GIF89a........"))).rejects.toThrow("not a PNG file");
    const bytes = fixture("comfyui.png");
    await expect(readPng(bytes, { maxBytes: 100, maxChunks: 100, maxTextBytes: 1e6 })).rejects.toThrow(/larger than 100 bytes/);
    await expect(readPng(bytes, { maxBytes: 1e6, maxChunks: 2, maxTextBytes: 1e6 })).rejects.toThrow(/more than 2 chunks/);
    await expect(readPng(bytes, { maxBytes: 1e6, maxChunks: 100, maxTextBytes: 50 })).rejects.toBeInstanceOf(PngError);
    const zipped = fixture("texts.png");
    await expect(readPng(zipped, { maxBytes: 1e6, maxChunks: 100, maxTextBytes: 100 })).rejects.toThrow(/inflates past 100 bytes/);
  });

  it("refuses a truncated file and a chunk whose length runs past the end", async () => {
    const bytes = fixture("comfyui.png");
    await expect(readPng(bytes.subarray(0, 40))).rejects.toThrow(/past the end|ends inside/);
    const forged = bytes.slice();
    new DataView(forged.buffer).setUint32(33, 0x7ffffff0); // the chunk after IHDR claims ~2 GB
    await expect(readPng(forged)).rejects.toThrow(/runs past the end/);
  });
});

describe("encodeGrayPng", () => {
  it("writes a grayscale PNG that reads back pixel for pixel, with its text", async () => {
    const pixels = new Uint8Array([0, 255, 0, 255, 255, 0]);
    const bytes = await encodeGrayPng(3, 2, pixels, { source: "safelight" });
    const back = await decodeGrayPng(bytes);
    expect(back).toEqual({ width: 3, height: 2, pixels });
    expect((await readPng(bytes)).text.get("source")).toBe("safelight");
  });
});
