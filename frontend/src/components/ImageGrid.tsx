import { useState } from "react";
import { Lightbox } from "../results/Lightbox";
import { describeOutput, OutputThumb, OutputView, type Output } from "../results/OutputView";
import type { Origin } from "../results/useResultActions";
import "./ImageGrid.css";

/**
 * Finished outputs; any of them opens the lightbox (full size, zoom, keys, download, use as input,
 * vary seed). One image is shown whole (the original, as large as the space allows, never smaller
 * than the preview before it); several as thumbnails, each with its seed and batch index.
 */
export function ImageGrid({ images, full = false, origin = null }: { images: Output[]; full?: boolean; origin?: Origin | null }) {
  const [open, setOpen] = useState<number | null>(null);
  if (images.length === 0) return null;
  const lightbox = open !== null && (
    <Lightbox outputs={images} index={open} origin={origin} onIndex={setOpen} onClose={() => setOpen(null)} />
  );
  if (images.length === 1 && !full) {
    const [image] = images as [Output];
    const picture = image.kind === "IMAGE" || image.kind === "ANIMATION";
    return (
      <div className="image-single-wrap">
        {picture ? (
          <button type="button" className="image-single" aria-label="Open the full-size image" onClick={() => setOpen(0)}>
            <OutputView output={image} />
          </button>
        ) : (
          <OutputView output={image} className="image-single-media" />
        )}
        <p className="image-caption">
          {describeOutput(image)}
          {!picture && (
            <>
              {" · "}
              <button type="button" className="link-button" onClick={() => setOpen(0)}>
                Open
              </button>
            </>
          )}
        </p>
        {lightbox}
      </div>
    );
  }
  return (
    <>
      <ul className={full ? "image-grid image-grid-full" : "image-grid"} aria-label="Results">
        {images.map((image, i) => (
          <li key={image.index}>
            <button
              type="button"
              className="image-link"
              aria-label={`Open result ${image.index + 1} (seed ${image.seedValue})`}
              onClick={() => setOpen(i)}
            >
              {full && (image.kind === "IMAGE" || image.kind === "ANIMATION") ? <OutputView output={image} /> : <OutputThumb output={image} />}
            </button>
            <p className="image-caption">{describeOutput(image)}</p>
          </li>
        ))}
      </ul>
      {lightbox}
    </>
  );
}
