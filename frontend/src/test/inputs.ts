import { vi } from "vitest";
import type { InputsApi, UploadOptions, UploadResult } from "../api/inputs";

export const uploaded = (id: string, over: Record<string, unknown> = {}): UploadResult => ({
  ok: true,
  input: { id, contentHash: `hash-${id}`, mime: "image/png", width: 40, height: 30, sizeBytes: 2048, filename: "cat.png", ...over },
});

/**
 * An InputsApi that answers uploads from a script of results (or a promise the test resolves), and
 * records what was sent.
 */
export function fakeInputs(results: (UploadResult | Promise<UploadResult>)[] = []) {
  const sent: { file: Blob; options: UploadOptions }[] = [];
  const api: InputsApi = {
    upload: vi.fn(async (file: Blob, options: UploadOptions = {}) => {
      sent.push({ file, options });
      options.onProgress?.(0.5);
      const next = results.shift();
      if (!next) throw new Error("no scripted upload result left");
      return next;
    }),
    objectUrl: vi.fn(async (id: string) => `blob:input-${id}`),
    remember: vi.fn((id: string) => `blob:input-${id}`),
  };
  return { api, sent };
}
