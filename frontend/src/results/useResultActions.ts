import { useMutation, useQuery } from "@apollo/client/react";
import { useState } from "react";
import { useNavigate } from "react-router";
import { useInputs } from "../api/inputs";
import { CreateGenerationMutation, FormDataQuery } from "../api/operations";
import { CURRENT_KEY, type GenerateState } from "../generation/current";
import {
  imageParamOf,
  loadValues,
  presetForm,
  randomSeed,
  toInput,
  valuesFromParameters,
  type TemplateInfo,
} from "../form/values";
import type { Output } from "./OutputView";

/** What "vary seed" needs of the generation an output came from. */
export interface Origin {
  id: string;
  template: string;
  parameters: unknown;
}

/**
 * The actions on a finished output. "Use as input" makes the output an input first (its bytes
 * fetched from its URL and uploaded with `POST /inputs`: a generation's outputs are not inputs),
 * then opens Generate on the chosen template with its image parameter set. "Vary seed" queues the
 * same parameters with a new random seed and shows the new generation on Generate.
 */
export function useResultActions(origin: Origin | null) {
  const { data } = useQuery(FormDataQuery);
  const inputs = useInputs();
  const navigate = useNavigate();
  const [create] = useMutation(CreateGenerationMutation);
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const templates = data?.templates ?? [];
  const targets = templates.filter((t) => imageParamOf(t));
  const source = origin ? templates.find((t) => t.name === origin.template) : undefined;

  const run = async (what: string, action: () => Promise<string | null>) => {
    setBusy(what);
    setMessage(null);
    try {
      const problem = await action();
      if (problem) setMessage(problem);
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(null);
    }
  };

  const sendToTemplate = (output: Output, target: TemplateInfo) =>
    run(`input:${target.name}`, async () => {
      const param = imageParamOf(target);
      if (!param) return `${target.title} takes no image.`;
      const response = await fetch(output.url);
      if (!response.ok) return `Could not read the image (HTTP ${response.status}).`;
      const bytes = await response.blob();
      const ext = output.mime.split("/")[1] ?? "png";
      const result = await inputs.upload(bytes, { filename: `${origin?.template ?? "result"}-${output.index}-${output.seedValue}.${ext}` });
      if (!result.ok) return `${result.message} (${result.code})`;
      inputs.remember(result.input.id, bytes);
      const values = loadValues(target);
      values[param.name] = result.input.id;
      for (const p of target.params) if (p.type === "MASK") values[p.name] = "";
      presetForm(target.name, values);
      navigate("/");
      return null;
    });

  const varySeed = () =>
    run("vary", async () => {
      if (!origin || !source) return "The template of this generation is no longer offered.";
      const values = valuesFromParameters(source, origin.parameters);
      const seed = source.params.find((p) => p.type === "SEED");
      if (seed) values[seed.name] = randomSeed(seed);
      const { data: result } = await create({ variables: { input: toInput(source, values), key: crypto.randomUUID() } });
      const payload = result?.createGeneration;
      if (!payload) return "The generation was not created.";
      if (payload.__typename !== "GenerationPayload") {
        if (payload.__typename === "ValidationError") return [payload.message, ...payload.errors.map((e) => `${e.field}: ${e.message}`)].join(" — ");
        return payload.message;
      }
      localStorage.setItem(CURRENT_KEY, payload.generation.id);
      navigate("/", { state: { current: payload.generation.id } satisfies GenerateState });
      return null;
    });

  // A template without a seed (an upscaler) would only make the same thing again.
  const canVary = Boolean(origin && source?.params.some((p) => p.type === "SEED"));
  return { targets, canVary, busy, message, sendToTemplate, varySeed };
}
