import { useCallback, useEffect, useRef, useState, type PointerEvent } from "react";
import { useInputs } from "../api/inputs";
import { useInputUrl } from "./ImageDrop";
import { MaskRaster, type Rect } from "./maskRaster";
import "./MaskPainter.css";

type Save = { state: "empty" } | { state: "dirty" } | { state: "saving" } | { state: "saved" } | { state: "error"; code: string; message: string };

const TINT: [number, number, number, number] = [229, 83, 61, 150];

const brushDefault = (w: number, h: number) => Math.max(4, Math.round(Math.min(w, h) / 20));
const brushMax = (w: number, h: number) => Math.max(16, Math.round(Math.min(w, h) / 3));

/**
 * A MASK parameter: paint over the chosen image (the template's IMAGE parameter) what inpainting
 * should repaint. The mask lives at the image's own pixel size (MaskRaster); a short pause after a
 * stroke uploads it as a white-on-black PNG through `POST /inputs`, and the value becomes that input.
 * Key it by the image id: a new image starts a new mask.
 */
export function MaskPainter({
  inputId,
  name,
  value,
  imageId,
  invalid,
  describedBy,
  onChange,
  saveDelayMs = 400,
}: {
  inputId: string;
  name: string;
  value: string;
  imageId: string;
  invalid: boolean;
  describedBy: string | undefined;
  onChange: (id: string) => void;
  saveDelayMs?: number;
}) {
  const inputs = useInputs();
  const { url, error } = useInputUrl(imageId);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null);
  const [brush, setBrush] = useState(0);
  const [erase, setErase] = useState(false);
  const [save, setSave] = useState<Save>(value ? { state: "saved" } : { state: "empty" });
  const raster = useRef<MaskRaster | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const cursor = useRef<HTMLSpanElement>(null);
  const stroke = useRef<{ x: number; y: number } | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const version = useRef(0);
  const initial = useRef(value);

  const paint = useCallback((rect: Rect | null) => {
    const r = raster.current;
    const ctx = canvas.current?.getContext("2d");
    if (!r || !rect || !ctx) return;
    ctx.putImageData(new ImageData(r.overlay(rect, TINT), rect.width, rect.height), rect.x, rect.y);
  }, []);

  // A mask saved before (this form's stored value) is shown again once the image's size is known.
  useEffect(() => {
    const r = raster.current;
    if (!size || !r || !initial.current) return;
    let live = true;
    inputs.objectUrl(initial.current).then(
      (maskUrl) => {
        const img = new Image();
        img.onload = () => {
          if (!live || img.naturalWidth !== r.width || img.naturalHeight !== r.height) return;
          const scratch = document.createElement("canvas");
          scratch.width = r.width;
          scratch.height = r.height;
          const ctx = scratch.getContext("2d");
          if (!ctx) return;
          ctx.drawImage(img, 0, 0);
          r.loadRgba(ctx.getImageData(0, 0, r.width, r.height).data);
          paint({ x: 0, y: 0, width: r.width, height: r.height });
        };
        img.src = maskUrl;
      },
      () => {},
    );
    return () => {
      live = false;
    };
  }, [size, inputs, paint]);

  useEffect(() => () => clearTimeout(timer.current), []);

  const upload = async () => {
    const r = raster.current;
    if (!r) return;
    const mine = ++version.current;
    if (r.isEmpty()) {
      setSave({ state: "empty" });
      onChange("");
      return;
    }
    setSave({ state: "saving" });
    const blob = new Blob([(await r.png()) as BlobPart], { type: "image/png" });
    const result = await inputs.upload(blob, { filename: "mask.png" });
    if (mine !== version.current) return; // a later stroke's save supersedes this one
    if (result.ok) {
      inputs.remember(result.input.id, blob);
      setSave({ state: "saved" });
      onChange(result.input.id);
    } else {
      setSave({ state: "error", code: result.code, message: result.message });
    }
  };

  const schedule = () => {
    clearTimeout(timer.current);
    version.current++;
    setSave({ state: "dirty" });
    timer.current = setTimeout(() => void upload(), saveDelayMs);
  };

  const point = (e: PointerEvent<HTMLCanvasElement>) => {
    const r = raster.current;
    const box = e.currentTarget.getBoundingClientRect();
    if (!r || box.width === 0 || box.height === 0) return null;
    return { x: ((e.clientX - box.left) / box.width) * r.width, y: ((e.clientY - box.top) / box.height) * r.height, scale: box.width / r.width };
  };

  const moveCursor = (e: PointerEvent<HTMLCanvasElement>) => {
    const el = cursor.current;
    const p = point(e);
    if (!el || !p) return;
    const box = e.currentTarget.getBoundingClientRect();
    const d = brush * 2 * p.scale;
    el.style.width = el.style.height = `${d}px`;
    el.style.transform = `translate(${e.clientX - box.left - d / 2}px, ${e.clientY - box.top - d / 2}px)`;
    el.style.opacity = "1";
  };

  const value255 = erase ? 0 : 255;
  const onDown = (e: PointerEvent<HTMLCanvasElement>) => {
    const p = point(e);
    if (!p || e.button > 0) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture?.(e.pointerId);
    stroke.current = p;
    clearTimeout(timer.current);
    paint(raster.current?.disc(p.x, p.y, brush, value255) ?? null);
  };
  const onMove = (e: PointerEvent<HTMLCanvasElement>) => {
    moveCursor(e);
    const last = stroke.current;
    const p = last && point(e);
    if (!last || !p) return;
    paint(raster.current?.line(last.x, last.y, p.x, p.y, brush, value255) ?? null);
    stroke.current = p;
  };
  const onUp = () => {
    if (!stroke.current) return;
    stroke.current = null;
    schedule();
  };

  const clear = () => {
    const r = raster.current;
    if (!r) return;
    r.clear();
    clearTimeout(timer.current);
    version.current++;
    canvas.current?.getContext("2d")?.clearRect(0, 0, r.width, r.height);
    setSave({ state: "empty" });
    onChange("");
  };

  if (!imageId) {
    return (
      <div className="mask-painter mask-waiting" id={inputId} tabIndex={-1} aria-describedby={describedBy}>
        Choose the image first: the mask is painted over it.
      </div>
    );
  }
  const status =
    save.state === "saving" || save.state === "dirty"
      ? "Saving the mask…"
      : save.state === "saved"
        ? "Mask saved"
        : save.state === "empty"
          ? "Paint over what should change"
          : null;
  return (
    <div className="mask-painter" id={inputId} tabIndex={-1} aria-invalid={invalid} aria-describedby={describedBy} data-testid={`mask-${name}`}>
      <div className="mask-tools" role="toolbar" aria-label="Mask tools">
        <div className="mask-modes">
          <button type="button" className="button button-small" aria-pressed={!erase} onClick={() => setErase(false)}>
            Brush
          </button>
          <button type="button" className="button button-small" aria-pressed={erase} onClick={() => setErase(true)}>
            Eraser
          </button>
        </div>
        <label className="mask-size">
          <span>Brush size</span>
          <input
            type="range"
            min={1}
            max={size ? brushMax(size.width, size.height) : 64}
            value={brush}
            disabled={!size}
            onChange={(e) => setBrush(Number(e.target.value))}
          />
          <span className="mask-size-value">{brush} px</span>
        </label>
        <button type="button" className="button button-ghost button-small" onClick={clear} disabled={!size}>
          Clear
        </button>
      </div>
      {error && <p className="field-error">{error}</p>}
      <div className="mask-stage">
        {url && (
          <img
            src={url}
            alt="The image the mask is painted over"
            draggable={false}
            onLoad={(e) => {
              const { naturalWidth: width, naturalHeight: height } = e.currentTarget;
              if (!width || !height || (size && size.width === width && size.height === height)) return;
              raster.current = new MaskRaster(width, height);
              setBrush(brushDefault(width, height));
              setSize({ width, height });
            }}
          />
        )}
        {size && (
          <canvas
            ref={canvas}
            width={size.width}
            height={size.height}
            className={erase ? "mask-canvas mask-erasing" : "mask-canvas"}
            aria-label={`Mask over the image: ${erase ? "erase" : "paint"} with the pointer`}
            data-testid="mask-canvas"
            onPointerDown={onDown}
            onPointerMove={onMove}
            onPointerUp={onUp}
            onPointerCancel={onUp}
            onPointerLeave={() => cursor.current && (cursor.current.style.opacity = "0")}
          />
        )}
        <span ref={cursor} className="mask-cursor" aria-hidden="true" />
      </div>
      <p className="mask-status" aria-live="polite" data-testid="mask-status">
        {size && <span className="muted">{size.width}×{size.height} · </span>}
        {status}
        {save.state === "error" && (
          <span className="field-error" role="alert">
            {save.message} ({save.code})
          </span>
        )}
      </p>
    </div>
  );
}
