import { createContext, useContext } from "react";

/**
 * Uploaded inputs (images and masks): `POST /inputs` (multipart, field `file`, the bearer token as for
 * GraphQL) answers an input id that IMAGE and MASK parameters take, or a typed error
 * `{"error": {"code", "message"}}` (NOT_AN_IMAGE, TOO_LARGE, TOO_MANY_PIXELS, ...) shown as it is.
 * `GET /inputs/<id>` needs the token too, so previews are fetched and shown as object URLs; the bytes
 * this browser uploaded itself are kept instead of fetched again.
 */
export interface UploadedInput {
  id: string;
  contentHash: string;
  mime: string;
  width: number;
  height: number;
  sizeBytes: number;
  filename: string;
}

export type UploadResult =
  | { ok: true; input: UploadedInput }
  | { ok: false; status: number; code: string; message: string };

export interface UploadOptions {
  filename?: string;
  /** Fraction of the body sent, 0 to 1. */
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
}

export interface InputsApi {
  upload(file: Blob, options?: UploadOptions): Promise<UploadResult>;
  /** An object URL of the input's bytes (kept for the page's life); rejects when it can't be read. */
  objectUrl(id: string): Promise<string>;
  /** Keep bytes this browser already has for an input id, so its preview costs no request. */
  remember(id: string, bytes: Blob): string;
}

function failure(status: number, body: unknown, fallback: string): UploadResult {
  const error = body && typeof body === "object" && "error" in body ? (body as { error: unknown }).error : null;
  if (error && typeof error === "object" && "code" in error && "message" in error) {
    return { ok: false, status, code: String(error.code), message: String(error.message) };
  }
  return { ok: false, status, code: status === 0 ? "NETWORK" : `HTTP_${status}`, message: fallback };
}

/** XMLHttpRequest rather than fetch: only it reports upload progress. */
function send(token: string, file: Blob, { filename, onProgress, signal }: UploadOptions): Promise<UploadResult> {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("file", file, filename ?? (file instanceof File ? file.name : "input.png"));
    xhr.open("POST", "/inputs");
    xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: a proxy's page; reported by status below
      }
      if (xhr.status === 200 && body && typeof body === "object" && "id" in body) {
        resolve({ ok: true, input: body as UploadedInput });
      } else {
        resolve(failure(xhr.status, body, `The upload failed (HTTP ${xhr.status}).`));
      }
    };
    xhr.onerror = () => resolve(failure(0, null, "The upload failed: the server could not be reached."));
    xhr.onabort = () => resolve({ ok: false, status: 0, code: "ABORTED", message: "The upload was cancelled." });
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(form);
  });
}

export function createInputsApi(token: string, fetcher: typeof fetch = (...a) => fetch(...a)): InputsApi {
  const urls = new Map<string, Promise<string>>();
  return {
    upload: (file, options = {}) => send(token, file, options),
    remember(id, bytes) {
      const url = URL.createObjectURL(bytes);
      urls.set(id, Promise.resolve(url));
      return url;
    },
    objectUrl(id) {
      let url = urls.get(id);
      if (!url) {
        url = fetcher(`/inputs/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } }).then(
          async (response) => {
            if (!response.ok) throw new Error(response.status === 404 ? "This input no longer exists." : `HTTP ${response.status}`);
            return URL.createObjectURL(await response.blob());
          },
        );
        url.catch(() => urls.delete(id));
        urls.set(id, url);
      }
      return url;
    },
  };
}

const unavailable: InputsApi = {
  upload: () => Promise.resolve({ ok: false, status: 0, code: "UNAVAILABLE", message: "Uploads need a signed-in app." }),
  objectUrl: () => Promise.reject(new Error("Inputs need a signed-in app.")),
  remember: (_id, bytes) => URL.createObjectURL(bytes),
};

export const InputsContext = createContext<InputsApi>(unavailable);

export const useInputs = () => useContext(InputsContext);
