/**
 * The little of PNG the app needs, without a library: the text chunks of a dropped file (ComfyUI and
 * Safelight embed the API-format workflow as `prompt` and the editor's as `workflow`), its size, and
 * writing an 8-bit grayscale image (the inpaint mask). Every read is bounded: a hostile file costs at
 * most `maxBytes` of memory and `maxChunks` steps, and an inflated text at most `maxTextBytes`.
 */

export class PngError extends Error {
  override name = "PngError";
}

export interface PngLimits {
  /** The largest file read at all. */
  maxBytes: number;
  /** Chunks walked before giving up (a PNG has a handful; a crafted one could have millions). */
  maxChunks: number;
  /** One text's largest size, compressed or inflated. */
  maxTextBytes: number;
}

export const DEFAULT_LIMITS: PngLimits = { maxBytes: 64 * 1024 * 1024, maxChunks: 10_000, maxTextBytes: 16 * 1024 * 1024 };

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export interface PngInfo {
  width: number;
  height: number;
  /** Text chunks (tEXt, zTXt, iTXt) by keyword; the first of a keyword wins. */
  text: Map<string, string>;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Inflate zlib data (PNG's compression), stopping with an error past `limit` bytes of output. */
async function inflate(data: Uint8Array, limit: number): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw new PngError(`a compressed text inflates past ${limit} bytes`);
      parts.push(value);
    }
  } catch (err) {
    if (err instanceof PngError) throw err;
    throw new PngError("a compressed text is damaged");
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function textChunk(type: string, data: Uint8Array, limits: PngLimits): Promise<[string, string] | null> {
  const nul = data.indexOf(0);
  if (nul < 1 || nul > 79) return null; // keywords are 1–79 bytes
  const keyword = latin1.decode(data.subarray(0, nul));
  if (type === "tEXt") return [keyword, latin1.decode(data.subarray(nul + 1))];
  if (type === "zTXt") {
    if (data[nul + 1] !== 0) return null; // only method 0 (zlib) is defined
    return [keyword, latin1.decode(await inflate(data.subarray(nul + 2), limits.maxTextBytes))];
  }
  // iTXt: keyword, compression flag, method, language tag\0, translated keyword\0, UTF-8 text
  const compressed = data[nul + 1] === 1;
  const language = data.indexOf(0, nul + 3);
  const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
  if (translated < 0) return null;
  const body = data.subarray(translated + 1);
  return [keyword, utf8.decode(compressed ? await inflate(body, limits.maxTextBytes) : body)];
}

/** Size and text chunks of a PNG, walking its chunks up to IEND; throws PngError on anything not a PNG. */
export async function readPng(bytes: Uint8Array, limits: PngLimits = DEFAULT_LIMITS): Promise<PngInfo> {
  if (bytes.length > limits.maxBytes) throw new PngError(`the file is larger than ${limits.maxBytes} bytes`);
  if (!isPng(bytes)) throw new PngError("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new Map<string, string>();
  let width = 0;
  let height = 0;
  let at = 8;
  for (let count = 0; ; count++) {
    if (count >= limits.maxChunks) throw new PngError(`more than ${limits.maxChunks} chunks`);
    if (at + 8 > bytes.length) throw new PngError("the file ends inside a chunk");
    const length = view.getUint32(at);
    const type = latin1.decode(bytes.subarray(at + 4, at + 8));
    const start = at + 8;
    const end = start + length;
    if (length > 0x7fffffff || end + 4 > bytes.length) throw new PngError(`chunk ${type} runs past the end of the file`);
    if (count === 0) {
      if (type !== "IHDR" || length < 8) throw new PngError("the first chunk is not IHDR");
      width = view.getUint32(start);
      height = view.getUint32(start + 4);
    }
    if (type === "IEND") break;
    if (type === "tEXt" || type === "zTXt" || type === "iTXt") {
      if (length > limits.maxTextBytes) throw new PngError(`a ${type} chunk is larger than ${limits.maxTextBytes} bytes`);
      const entry = await textChunk(type, bytes.subarray(start, end), limits);
      if (entry && !text.has(entry[0])) text.set(entry[0], entry[1]);
    }
    at = end + 4; // past the CRC
  }
  return { width, height, text };
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const part of parts) for (const byte of part) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  const name = new Uint8Array([...type].map((c) => c.charCodeAt(0)));
  view.setUint32(0, data.length);
  out.set(name, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32([name, data]));
  return out;
}

async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * An 8-bit grayscale PNG of `pixels` (one byte per pixel, row by row), with optional tEXt chunks.
 * Used for the inpaint mask, whose pixels are exactly 0 or 255.
 */
export async function encodeGrayPng(
  width: number,
  height: number,
  pixels: Uint8Array,
  text: Record<string, string> = {},
): Promise<Uint8Array> {
  if (pixels.length !== width * height) throw new PngError("pixels do not match the size");
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8); // 8 bits, grayscale, deflate, adaptive filtering, no interlace
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const parts = [
    new Uint8Array(SIGNATURE),
    chunk("IHDR", header),
    ...Object.entries(text).map(([k, v]) => chunk("tEXt", new Uint8Array([...`${k}\0${v}`].map((c) => c.charCodeAt(0) & 0xff)))),
    chunk("IDAT", await deflate(raw)),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The pixels of a grayscale PNG written by encodeGrayPng (filter 0, no interlace): for tests and checks. */
export async function decodeGrayPng(bytes: Uint8Array): Promise<{ width: number; height: number; pixels: Uint8Array }> {
  const { width, height } = await readPng(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  for (let at = 8; at < bytes.length; ) {
    const length = view.getUint32(at);
    const type = latin1.decode(bytes.subarray(at + 4, at + 8));
    if (type === "IHDR" && (bytes[at + 16] !== 8 || bytes[at + 17] !== 0)) throw new PngError("not 8-bit grayscale");
    if (type === "IDAT") idat.push(bytes.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const joined = new Uint8Array(idat.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of idat) {
    joined.set(part, offset);
    offset += part.length;
  }
  const raw = await inflate(joined, (width + 1) * height);
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    if (raw[y * (width + 1)] !== 0) throw new PngError("a filtered row");
    pixels.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { width, height, pixels };
}
