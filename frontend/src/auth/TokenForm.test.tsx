import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { TokenForm } from "../App";

const respond = (status: number, body: unknown) =>
  vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));

describe("TokenForm after Sign out", () => {
  it("in dev mode says the server signs local browsers in, and signs back in with one click", async () => {
    const onToken = vi.fn();
    render(<TokenForm reason="Signed out." onToken={onToken} fetcher={respond(200, { token: "dev-token", user: "dev" })} />);
    expect(screen.getByRole("alert")).toHaveTextContent("Signed out.");
    expect(screen.getByRole("alert")).not.toHaveClass("alert-error");
    expect(await screen.findByTestId("dev-signin")).toHaveTextContent("dev mode");
    await userEvent.setup().click(screen.getByRole("button", { name: "Continue as the dev user" }));
    expect(onToken).toHaveBeenCalledWith("dev-token");
  });

  it("outside dev mode only asks for a token", async () => {
    const fetcher = respond(404, "not found");
    render(<TokenForm reason={null} onToken={() => {}} fetcher={fetcher} />);
    await vi.waitFor(() => expect(fetcher).toHaveBeenCalled());
    expect(screen.queryByTestId("dev-signin")).toBeNull();
    expect(screen.getByLabelText("API token")).toBeInTheDocument();
  });
});
