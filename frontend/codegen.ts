import type { CodegenConfig } from "@graphql-codegen/cli";
import { existsSync, readFileSync } from "node:fs";
import { Kind, parse, print, type DefinitionNode, type DocumentNode } from "graphql";

/**
 * What contract16.graphql adds that ../schema.graphql does not have yet: types the schema lacks,
 * and extensions narrowed to the fields and enum values it lacks. Empty once the API serves them all,
 * so the committed schema always wins and a landed field is never declared twice.
 */
export function pendingContract(schema: DocumentNode, contract: DocumentNode): string {
  const members = new Map<string, Set<string>>();
  for (const def of schema.definitions) {
    if (!("name" in def) || !def.name) continue;
    const names = new Set<string>();
    if ("fields" in def && def.fields) for (const f of def.fields) names.add(f.name.value);
    if ("values" in def && def.values) for (const v of def.values) names.add(v.name.value);
    members.set(def.name.value, names);
  }
  const pending: DefinitionNode[] = [];
  for (const def of contract.definitions) {
    if (!("name" in def) || !def.name) continue;
    const known = members.get(def.name.value);
    if (def.kind === Kind.OBJECT_TYPE_EXTENSION || def.kind === Kind.INPUT_OBJECT_TYPE_EXTENSION) {
      const fields = (def.fields ?? []).filter((f) => !known?.has(f.name.value));
      if (fields.length) pending.push({ ...def, fields } as DefinitionNode);
    } else if (def.kind === Kind.ENUM_TYPE_EXTENSION) {
      const values = (def.values ?? []).filter((v) => !known?.has(v.name.value));
      if (values.length) pending.push({ ...def, values });
    } else if (!known) {
      pending.push(def);
    }
  }
  return pending.length ? print({ kind: Kind.DOCUMENT, definitions: pending }) : "";
}

function schemaSources(): string[] {
  const base = "../schema.graphql";
  if (!existsSync("contract16.graphql")) return [base];
  const extra = pendingContract(parse(readFileSync(base, "utf8")), parse(readFileSync("contract16.graphql", "utf8")));
  return extra ? [base, extra] : [base];
}

/** Typed operations from the committed API schema; output is generated, never edited or committed. */
const config: CodegenConfig = {
  schema: schemaSources(),
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
