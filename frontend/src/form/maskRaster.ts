import { encodeGrayPng } from "../png/png";

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * An inpaint mask at the image's own pixel size: one byte per pixel, 255 where the image is to be
 * repainted, 0 elsewhere. Painting happens here, not on a canvas, so the exported PNG is exactly
 * white on black (no anti-aliased greys the workflow would read as half a mask) and the same in every
 * browser and in tests; the canvas only shows it.
 */
export class MaskRaster {
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = new Uint8Array(width * height);
  }

  /** Set a disc of `radius` image pixels around (cx, cy) to `value`; the touched rectangle, or null. */
  disc(cx: number, cy: number, radius: number, value: 0 | 255): Rect | null {
    const r = Math.max(0.5, radius);
    const x0 = Math.max(0, Math.floor(cx - r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const x1 = Math.min(this.width - 1, Math.ceil(cx + r));
    const y1 = Math.min(this.height - 1, Math.ceil(cy + r));
    if (x0 > x1 || y0 > y1) return null;
    const r2 = r * r;
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) this.pixels[y * this.width + x] = value;
      }
    }
    return { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
  }

  /** A stroke from one pointer position to the next: discs close enough to leave no gaps. */
  line(ax: number, ay: number, bx: number, by: number, radius: number, value: 0 | 255): Rect | null {
    const length = Math.hypot(bx - ax, by - ay);
    const steps = Math.max(1, Math.ceil(length / Math.max(1, radius / 2)));
    let box: Rect | null = null;
    for (let i = 0; i <= steps; i++) {
      const t = i / steps;
      box = union(box, this.disc(ax + (bx - ax) * t, ay + (by - ay) * t, radius, value));
    }
    return box;
  }

  clear(): void {
    this.pixels.fill(0);
  }

  isEmpty(): boolean {
    return !this.pixels.some((p) => p !== 0);
  }

  /** Take a mask back from RGBA pixels (a mask PNG drawn on a canvas): bright is masked. */
  loadRgba(rgba: Uint8ClampedArray): void {
    for (let i = 0; i < this.pixels.length; i++) this.pixels[i] = (rgba[i * 4] ?? 0) >= 128 ? 255 : 0;
  }

  /** The PNG the workflow's mask loader reads: 8-bit grayscale, white on black, the image's size. */
  png(): Promise<Uint8Array> {
    return encodeGrayPng(this.width, this.height, this.pixels);
  }

  /** The overlay shown over the image for one rectangle: masked pixels tinted, the rest clear. */
  overlay(rect: Rect, rgba: [number, number, number, number]): Uint8ClampedArray<ArrayBuffer> {
    const out = new Uint8ClampedArray(rect.width * rect.height * 4);
    for (let y = 0; y < rect.height; y++) {
      for (let x = 0; x < rect.width; x++) {
        if (this.pixels[(rect.y + y) * this.width + rect.x + x] === 0) continue;
        out.set(rgba, (y * rect.width + x) * 4);
      }
    }
    return out;
  }
}

function union(a: Rect | null, b: Rect | null): Rect | null {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}
