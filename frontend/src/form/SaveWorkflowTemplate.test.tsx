import type { MockLink } from "@apollo/client/testing";
import { MockedProvider } from "@apollo/client/testing/react";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { createCache } from "../api/client";
import { ProposeTemplateMutation, SaveTemplateMutation } from "../api/operations";
import { SaveWorkflowTemplate, suggestName } from "./SaveWorkflowTemplate";

type Mock = MockLink.MockedResponse;
const workflow = { nodes: [{ id: 3, type: "KSampler" }], links: [] };
const proposed = [
  { name: "prompt", type: "string", targets: [["6", "text"]] },
  { name: "seed", type: "seed", targets: [["3", "seed"]] },
];

const proposal: Mock = {
  request: { query: ProposeTemplateMutation, variables: { workflow } },
  result: {
    data: {
      proposeTemplate: {
        __typename: "TemplateProposal",
        format: "UI",
        params: proposed,
        problems: [{ __typename: "FieldError", field: "workflow.4.inputs.ckpt_name", message: "not offered by the backends" }],
      },
    },
  },
};

const saving = (result: object, seen: (v: Record<string, unknown>) => void): Mock => ({
  request: {
    query: SaveTemplateMutation,
    variables: (v: Record<string, unknown>) => {
      seen(v);
      return true;
    },
  },
  result: { data: { saveTemplate: result } },
});

describe("SaveWorkflowTemplate", () => {
  it("shows the proposal, refuses a taken name with the API's message, then saves the proposal as it is", async () => {
    const sent: Record<string, unknown>[] = [];
    const onSaved = vi.fn();
    render(
      <MockedProvider
        cache={createCache()}
        mocks={[
          proposal,
          saving({ __typename: "TemplateNameTakenError", message: "txt2img is a shipped template", name: "txt2img" }, (v) => sent.push(v)),
          saving(
            { __typename: "TemplatePayload", template: { __typename: "Template", name: "my-flow", title: "My flow", version: 1 } },
            (v) => sent.push(v),
          ),
        ]}
      >
        <SaveWorkflowTemplate workflow={workflow} filename="My Flow.json" onSaved={onSaved} onClose={() => {}} />
      </MockedProvider>,
    );
    const user = userEvent.setup();
    expect(await screen.findByText(/Editor workflow · proposed parameters: prompt \(string\), seed \(seed\)/)).toBeInTheDocument();
    expect(screen.getByText("not offered by the backends")).toBeInTheDocument();
    const name = screen.getByLabelText("Name");
    expect(name).toHaveValue("my-flow");

    await user.clear(name);
    await user.type(name, "txt2img");
    await user.click(screen.getByRole("button", { name: "Save template" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("txt2img is a shipped template");
    expect(onSaved).not.toHaveBeenCalled();

    await user.clear(name);
    await user.type(name, "my-flow");
    await user.type(screen.getByLabelText("Title"), "My flow");
    await user.click(screen.getByRole("button", { name: "Save template" }));
    await waitFor(() => expect(onSaved).toHaveBeenCalledWith("my-flow"));
    expect(sent[1]).toEqual({ input: { name: "my-flow", title: "My flow", workflow, params: null } });
  });

  it("sends the declarations an admin edited, and says when they are not JSON", async () => {
    const sent: Record<string, unknown>[] = [];
    render(
      <MockedProvider
        cache={createCache()}
        mocks={[
          proposal,
          saving(
            { __typename: "TemplatePayload", template: { __typename: "Template", name: "my-flow", title: "my-flow", version: 1 } },
            (v) => sent.push(v),
          ),
        ]}
      >
        <SaveWorkflowTemplate workflow={workflow} filename="my-flow.json" onSaved={() => {}} onClose={() => {}} />
      </MockedProvider>,
    );
    const user = userEvent.setup();
    await screen.findByText(/proposed parameters/);
    const editor = screen.getByLabelText("Parameter declarations");
    await user.clear(editor);
    await user.type(editor, "not json");
    await user.click(screen.getByRole("button", { name: "Save template" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The parameters are not valid JSON");
    expect(sent).toHaveLength(0);
    const edited = [proposed[0]];
    await user.clear(editor);
    await user.click(editor);
    await user.paste(JSON.stringify(edited));
    await user.click(screen.getByRole("button", { name: "Save template" }));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0]).toMatchObject({ input: { params: edited } });
  });

  it("suggests a template name from the file name", () => {
    expect(suggestName("My Lighthouse (v2).json")).toBe("my-lighthouse-v2");
    expect(suggestName("___.png")).toBe("___");
    expect(suggestName("!!!.json")).toBe("workflow");
  });
});
