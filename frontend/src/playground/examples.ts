/**
 * The playground's first tabs: create a generation, follow it, list them. Plain strings (not
 * `graphql()` documents) so codegen leaves them alone; `examples.test.ts` checks them against the schema.
 */
export interface Example {
  title: string;
  query: string;
  variables?: string;
}

export const CREATE = `# Queue a generation. Copy the id it returns into the "Follow" tab.
mutation Create($input: GenerationInput!) {
  createGeneration(input: $input) {
    __typename
    ... on GenerationPayload {
      created
      generation {
        id
        status
        seedUsed
      }
    }
    ... on ValidationError {
      message
      errors {
        field
        message
      }
    }
    ... on QuotaExceededError {
      message
      limit
    }
    ... on BackendUnavailableError {
      message
    }
    ... on NotAllowedError {
      message
    }
  }
}
`;

export const FOLLOW = `# Follow one generation over the websocket: a SNAPSHOT, then live events until the
# terminal one, then the subscription completes.
subscription Follow($id: ID!) {
  generationEvents(id: $id) {
    seq
    kind
    status
    terminal
    progress {
      phase
      percent
      step
      maxSteps
    }
    image {
      url
      width
      height
    }
    error {
      code
      message
    }
  }
}
`;

export const LIST = `# Your generations, newest first (pass pageInfo.endCursor as $after for the next page).
query List($after: String) {
  generations(first: 10, after: $after) {
    edges {
      node {
        id
        status
        prompt
        createdAt
        images {
          url
        }
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
`;

export const EXAMPLES: Example[] = [
  {
    title: "Create",
    query: CREATE,
    variables: JSON.stringify({ input: { prompt: "a lighthouse at dusk, volumetric fog", steps: 20 } }, null, 2),
  },
  { title: "Follow", query: FOLLOW, variables: JSON.stringify({ id: "<generation id from Create>" }, null, 2) },
  { title: "List", query: LIST, variables: "{}" },
];
