import { describe, expect, it } from "vitest";
import { decodeGrayPng } from "../png/png";
import { MaskRaster } from "./maskRaster";

describe("MaskRaster", () => {
  it("paints discs and gapless lines, clipped to the image, and reports the touched rectangle", () => {
    const r = new MaskRaster(20, 10);
    expect(r.isEmpty()).toBe(true);
    expect(r.disc(0, 0, 2, 255)).toEqual({ x: 0, y: 0, width: 3, height: 3 });
    expect(r.pixels[0]).toBe(255);
    expect(r.disc(-50, -50, 2, 255)).toBeNull();
    r.clear();
    r.line(2, 5, 17, 5, 1, 255);
    for (let x = 2; x <= 16; x++) expect(r.pixels[5 * 20 + x]).toBe(255);
    expect(r.pixels[0 * 20 + 10]).toBe(0);
    r.line(2, 5, 17, 5, 1, 0);
    expect(r.isEmpty()).toBe(true);
  });

  it("exports an 8-bit grayscale PNG of exactly 0 and 255 at its size, and reads one back from RGBA", async () => {
    const r = new MaskRaster(7, 5);
    r.disc(3.5, 2.5, 1.5, 255);
    const { width, height, pixels } = await decodeGrayPng(await r.png());
    expect([width, height]).toEqual([7, 5]);
    expect(pixels).toEqual(r.pixels);
    expect(new Set(pixels)).toEqual(new Set([0, 255]));
    const rgba = new Uint8ClampedArray(7 * 5 * 4);
    rgba[4 * 8] = 200; // pixel (1, 1) bright
    rgba[4 * 9] = 100; // pixel (2, 1) dark
    r.loadRgba(rgba);
    expect([...r.pixels].filter((p) => p === 255)).toHaveLength(1);
    expect(r.pixels[8]).toBe(255);
  });
});
