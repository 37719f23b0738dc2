import { act, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ConnectionStore } from "../api/connection";
import { ConnectionBanner } from "../App";

describe("ConnectionBanner", () => {
  it("appears while reconnecting and goes away once connected", () => {
    const store = new ConnectionStore();
    render(<ConnectionBanner connection={store} />);
    act(() => store.connected());
    expect(screen.queryByRole("status")).toBeNull();
    act(() => store.lost(2));
    expect(screen.getByRole("status")).toHaveTextContent(
      /^Connection lost — reconnecting in 2 s\. Live updates resume where they left off\.$/,
    );
    act(() => store.connecting());
    expect(screen.getByRole("status")).toBeInTheDocument();
    act(() => store.connected());
    expect(screen.queryByRole("status")).toBeNull();
    expect(store.getSnapshot().reconnects).toBe(1);
  });

  it("says so when the server refuses the token", () => {
    const store = new ConnectionStore();
    render(<ConnectionBanner connection={store} />);
    act(() => store.rejected("Forbidden"));
    expect(screen.getByRole("status")).toHaveTextContent("Live updates stopped: Forbidden.");
  });
});
