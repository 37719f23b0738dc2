import type { ImageFieldsFragment } from "../gql/graphql";

export type Output = ImageFieldsFragment;

const KIND_LABEL: Record<Output["kind"], string> = {
  IMAGE: "Image",
  ANIMATION: "Animation",
  VIDEO: "Video",
  AUDIO: "Audio",
  TEXT: "Text",
};

export const kindLabel = (output: Output) => KIND_LABEL[output.kind] ?? "Output";

/** Whether an output can become an input (an IMAGE parameter takes still pictures). */
export const isPicture = (output: Output) => output.kind === "IMAGE";

export function describeOutput(output: Output): string {
  const parts = [`seed ${output.seedValue}`, `batch ${output.batchIndex}`];
  if (output.width && output.height) parts.push(`${output.width}×${output.height}`);
  if (output.frames) parts.push(`${output.frames} frames`);
  if (output.durationSeconds) parts.push(`${output.durationSeconds.toFixed(1)} s`);
  return parts.join(" · ");
}

/**
 * One output at full size, by its kind: pictures and animations as images, video and audio with the
 * browser's controls, text as preformatted text.
 */
export function OutputView({ output, className }: { output: Output; className?: string }) {
  const alt = `Result ${output.index + 1}, seed ${output.seedValue}`;
  switch (output.kind) {
    case "VIDEO":
      return <video className={className} src={output.url} controls loop playsInline aria-label={alt} data-testid="result-video" />;
    case "AUDIO":
      return <audio className={className} src={output.url} controls aria-label={alt} data-testid="result-audio" />;
    case "TEXT":
      return (
        <pre className={`output-text ${className ?? ""}`} data-testid="result-text" aria-label={alt}>
          {output.text ?? ""}
        </pre>
      );
    default:
      return (
        <img
          className={className}
          src={output.url}
          width={output.width ?? undefined}
          height={output.height ?? undefined}
          alt={alt}
          data-testid="result-image"
        />
      );
  }
}

/** A small stand-in for an output in a grid of thumbnails. */
export function OutputThumb({ output }: { output: Output }) {
  const alt = `Result ${output.index + 1}, seed ${output.seedValue}`;
  switch (output.kind) {
    case "IMAGE":
    case "ANIMATION":
      return (
        <img
          src={output.kind === "IMAGE" ? (output.thumbnailUrl ?? output.url) : output.url}
          width={output.width ?? undefined}
          height={output.height ?? undefined}
          alt={alt}
          loading="lazy"
          data-testid="result-image"
        />
      );
    case "VIDEO":
      return (
        <span className="output-tile output-tile-video">
          <video src={output.url} muted preload="metadata" playsInline aria-label={alt} data-testid="result-video" />
          <span className="output-tile-label">▶ Video{output.durationSeconds ? ` · ${output.durationSeconds.toFixed(1)} s` : ""}</span>
        </span>
      );
    case "AUDIO":
      return (
        <span className="output-tile" aria-label={alt} data-testid="result-audio">
          <span className="output-tile-icon" aria-hidden="true">♪</span>
          <span className="output-tile-label">Audio{output.durationSeconds ? ` · ${output.durationSeconds.toFixed(1)} s` : ""}</span>
        </span>
      );
    default:
      return (
        <span className="output-tile output-tile-text" aria-label={alt} data-testid="result-text">
          {(output.text ?? "").slice(0, 400)}
        </span>
      );
  }
}
