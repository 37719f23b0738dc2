import type { ImageFieldsFragment } from "../gql/graphql";
import "./ImageGrid.css";

/**
 * Finished images, each linking to its full-size original. One image is shown whole (the original,
 * as large as the space allows, never smaller than the preview before it); several as thumbnails.
 */
export function ImageGrid({ images, full = false }: { images: ImageFieldsFragment[]; full?: boolean }) {
  if (images.length === 0) return null;
  if (images.length === 1 && !full) {
    const [image] = images as [ImageFieldsFragment];
    return (
      <a href={image.url} target="_blank" rel="noreferrer" className="image-single" aria-label="Open the full-size image">
        <img
          src={image.url}
          width={image.width}
          height={image.height}
          alt={`Result 1, seed ${image.seedValue}`}
          data-testid="result-image"
        />
      </a>
    );
  }
  return (
    <ul className={full ? "image-grid image-grid-full" : "image-grid"} aria-label="Result images">
      {images.map((image) => (
        <li key={image.index}>
          <a href={image.url} target="_blank" rel="noreferrer" className="image-link">
            <img
              src={full ? image.url : image.thumbnailUrl}
              width={image.width}
              height={image.height}
              alt={`Result ${image.index + 1}, seed ${image.seedValue}`}
              loading="lazy"
              data-testid="result-image"
            />
          </a>
          {full && (
            <p className="image-caption">
              {image.width}×{image.height} · seed {image.seedValue}
            </p>
          )}
        </li>
      ))}
    </ul>
  );
}
