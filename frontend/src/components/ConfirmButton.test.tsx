import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ConfirmButton } from "./ConfirmButton";

describe("ConfirmButton", () => {
  it("asks before acting, and can be backed out of with Keep or Escape", async () => {
    const onConfirm = vi.fn();
    const user = userEvent.setup();
    render(<ConfirmButton label="Delete" question="Delete for good?" confirmLabel="Delete" onConfirm={onConfirm} />);
    await user.click(screen.getByRole("button", { name: "Delete" }));
    const group = screen.getByRole("group", { name: "Delete for good?" });
    expect(group).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delete" })).toHaveFocus();
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("group")).toBeNull();
    expect(onConfirm).not.toHaveBeenCalled();

    await user.click(screen.getByRole("button", { name: "Delete" }));
    await user.click(screen.getByRole("button", { name: "Keep" }));
    expect(onConfirm).not.toHaveBeenCalled();

    await user.click(screen.getByRole("button", { name: "Delete" }));
    await user.keyboard("{Enter}");
    expect(onConfirm).toHaveBeenCalledOnce();
  });

  it("asks a neutral question without the danger style, its buttons side by side", async () => {
    const user = userEvent.setup();
    render(<ConfirmButton label="Retry" question="Run again?" confirmLabel="Retry" tone="neutral" onConfirm={() => {}} />);
    await user.click(screen.getByRole("button", { name: "Retry" }));
    const confirm = screen.getByRole("button", { name: "Retry" });
    expect(confirm).not.toHaveClass("button-danger");
    expect(confirm).toHaveClass("button-confirm");
    expect(confirm.parentElement).toHaveClass("confirm-buttons");
    expect(screen.getByRole("button", { name: "Keep" }).parentElement).toBe(confirm.parentElement);
  });
});
