import type { GenerationFieldsFragment } from "../gql/graphql";
import type { TemplateInfo } from "../form/values";

export const param = (over: Partial<TemplateInfo["params"][number]>): TemplateInfo["params"][number] => ({
  name: "x",
  type: "STRING",
  description: "",
  required: false,
  default: null,
  min: null,
  max: null,
  multipleOf: null,
  maxLength: null,
  maxItems: null,
  choices: null,
  catalog: null,
  multiline: false,
  ...over,
});

export const template: TemplateInfo = {
  name: "txt2img",
  title: "Text to image",
  description: "",
  version: 1,
  source: "SHIPPED",
  params: [
    param({ name: "checkpoint", type: "ENUM", catalog: "CHECKPOINTS" }),
    param({ name: "loras", type: "LORAS", default: [], maxItems: 2, min: -4, max: 4, catalog: "LORAS" }),
    param({ name: "prompt", type: "STRING", required: true, maxLength: 20 }),
    param({ name: "negativePrompt", type: "STRING", default: "", maxLength: 20 }),
    param({ name: "width", type: "INT", default: 512, min: 64, max: 2048, multipleOf: 8 }),
    param({ name: "cfg", type: "FLOAT", default: 7, min: 0, max: 30 }),
    param({ name: "sampler", type: "ENUM", default: "euler", catalog: "SAMPLERS" }),
    param({ name: "seed", type: "SEED", min: 0, max: 9007199254740991 }),
    param({ name: "denoise", type: "FLOAT", default: 1, min: 0, max: 1 }),
  ],
};

export const catalog = {
  available: true,
  checkpoints: ["a.safetensors", "b.safetensors"],
  loras: ["detail.safetensors"],
  samplers: ["euler", "dpmpp_2m"],
  schedulers: ["normal"],
};


export const generationFixture = (over: Partial<GenerationFieldsFragment> = {}): GenerationFieldsFragment => ({
  __typename: "Generation",
  id: "g1",
  template: "txt2img",
  status: "QUEUED",
  attempt: 1,
  prompt: "a cat",
  parameters: {},
  seedUsed: 7,
  backend: null,
  promptId: null,
  createdAt: "2026-01-01T00:00:00Z",
  startedAt: null,
  finishedAt: null,
  lastSeq: 1,
  loras: [],
  progress: {
    __typename: "Progress",
    phase: "WAITING",
    percent: 0,
    node: null,
    nodeClass: null,
    step: null,
    maxSteps: null,
    queuePosition: 0,
    emittedAt: null,
  reason: null,
  retryAt: null,
  deadlineAt: null,
  },
  error: null,
  images: [],
  ...over,
});

export const progressFixture = (percent: number, step = 1) => ({
  __typename: "Progress" as const,
  phase: "EXECUTING" as const,
  percent,
  node: "3",
  nodeClass: "KSampler",
  step,
  maxSteps: 10,
  queuePosition: null,
  emittedAt: null,
  reason: null,
  retryAt: null,
  deadlineAt: null,
});

export const imageFixture = (index: number) => ({
  __typename: "Image" as const,
  index,
  contentHash: `h${index}`,
  url: `/images/h${index}`,
  thumbnailUrl: `/thumbs/256/h${index}`,
  width: 64,
  height: 64,
  sizeBytes: 10,
  mime: "image/png",
  seedValue: 1,
  kind: "IMAGE" as const,
  batchIndex: index,
  durationSeconds: null,
  frames: null,
  text: null,
  downloadUrl: `/images/g1/${index}?download=1`,
});
