import { useEffect, useRef, useState } from "react";
import "./ConfirmButton.css";

/** A button that asks once more, inline, before doing something that can't be undone. */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  className = "button",
  tone = "danger",
  disabled,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => void;
  className?: string;
  /** "danger" for what can't be undone (delete), "neutral" for a question such as "Run again?". */
  tone?: "danger" | "neutral";
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const size = className.includes("button-small") ? " button-small" : ""; // the answers match the question's button
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className={className} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span
      className="confirm"
      role="group"
      aria-label={question}
      onKeyDown={(e) => {
        if (e.key === "Escape") setAsking(false);
      }}
    >
      <span className="confirm-question">{question}</span>
      <span className="confirm-buttons">
        <button
          ref={confirmRef}
          type="button"
          className={`button ${tone === "danger" ? "button-danger" : "button-confirm"}${size}`}
          onClick={() => {
            setAsking(false);
            onConfirm();
          }}
        >
          {confirmLabel}
        </button>
        <button type="button" className={`button button-ghost${size}`} onClick={() => setAsking(false)}>
          Keep
        </button>
      </span>
    </span>
  );
}
