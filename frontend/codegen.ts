import type { CodegenConfig } from "@graphql-codegen/cli";

/** Typed operations from the committed API schema; output is generated, never edited or committed. */
const config: CodegenConfig = {
  schema: "../schema.graphql",
  documents: ["src/**/*.{ts,tsx}", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  generates: {
    "./src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { DateTime: "string", JSON: "unknown" },
        avoidOptionals: { field: true, object: true },
      },
    },
    "./src/gql/possibleTypes.ts": {
      plugins: ["fragment-matcher"],
      config: { apolloClientVersion: 3, useExplicitTyping: true },
    },
  },
  silent: true,
};

export default config;
