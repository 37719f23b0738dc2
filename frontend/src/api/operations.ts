import { graphql } from "../gql";

export const GenerationFields = graphql(`
  fragment GenerationFields on Generation {
    id
    template
    status
    attempt
    prompt
    parameters
    seedUsed
    backend
    promptId
    createdAt
    startedAt
    finishedAt
    lastSeq
    loras {
      name
      strength
    }
    progress {
      ...ProgressFields
    }
    error {
      code
      message
      retryable
      node
      input
    }
    images {
      ...ImageFields
    }
  }
`);

export const ProgressFields = graphql(`
  fragment ProgressFields on Progress {
    phase
    percent
    node
    nodeClass
    step
    maxSteps
    queuePosition
    emittedAt
    reason
    retryAt
    deadlineAt
  }
`);

export const ImageFields = graphql(`
  fragment ImageFields on Image {
    index
    contentHash
    url
    thumbnailUrl
    width
    height
    sizeBytes
    mime
    seedValue
    kind
    batchIndex
    durationSeconds
    frames
    text
    downloadUrl
  }
`);

export const ViewerQuery = graphql(`
  query Viewer {
    viewer {
      id
      name
      isAdmin
    }
  }
`);

export const FormDataQuery = graphql(`
  query FormData {
    templates {
      name
      title
      description
      version
      source
      params {
        name
        type
        description
        required
        default
        min
        max
        multipleOf
        maxLength
        maxItems
        choices
        catalog
        multiline
      }
    }
    catalog {
      available
      checkpoints
      loras
      samplers
      schedulers
    }
  }
`);

export const GenerationQuery = graphql(`
  query Generation($id: ID!) {
    generation(id: $id) {
      ...GenerationFields
    }
  }
`);

export const GenerationsQuery = graphql(`
  query Generations($first: Int!, $after: String, $status: [Status!], $search: String) {
    generations(first: $first, after: $after, status: $status, search: $search) {
      edges {
        cursor
        node {
          ...GenerationFields
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const CreateGenerationMutation = graphql(`
  mutation CreateGeneration($input: GenerationInput!, $key: String) {
    createGeneration(input: $input, idempotencyKey: $key) {
      __typename
      ... on GenerationPayload {
        created
        generation {
          ...GenerationFields
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
`);

export const CancelGenerationMutation = graphql(`
  mutation CancelGeneration($id: ID!) {
    cancelGeneration(id: $id) {
      __typename
      ... on GenerationPayload {
        generation {
          id
          status
        }
      }
      ... on NotFoundError {
        message
      }
      ... on InvalidStateError {
        message
      }
      ... on NotAllowedError {
        message
      }
    }
  }
`);

export const RetryGenerationMutation = graphql(`
  mutation RetryGeneration($id: ID!) {
    retryGeneration(id: $id) {
      __typename
      ... on GenerationPayload {
        generation {
          ...GenerationFields
        }
      }
      ... on NotFoundError {
        message
      }
      ... on InvalidStateError {
        message
      }
      ... on QuotaExceededError {
        message
      }
      ... on NotAllowedError {
        message
      }
    }
  }
`);

export const DeleteGenerationMutation = graphql(`
  mutation DeleteGeneration($id: ID!) {
    deleteGeneration(id: $id) {
      __typename
      ... on DeletedGeneration {
        id
      }
      ... on NotFoundError {
        message
      }
      ... on NotAllowedError {
        message
      }
    }
  }
`);

export const GenerationEventsSubscription = graphql(`
  subscription GenerationEvents($id: ID!, $after: Int) {
    generationEvents(id: $id, after: $after) {
      ...EventFields
    }
  }
`);

export const MyGenerationEventsSubscription = graphql(`
  subscription MyGenerationEvents {
    myGenerationEvents {
      generationId
      seq
      kind
      status
      terminal
    }
  }
`);

export const EventFields = graphql(`
  fragment EventFields on GenerationEvent {
    generationId
    seq
    kind
    at
    terminal
    status
    attempt
    error {
      code
      message
      retryable
      node
      input
    }
    progress {
      ...ProgressFields
    }
    image {
      ...ImageFields
    }
    previewUrl
    generation {
      ...GenerationFields
    }
  }
`);


export const SystemStatusFields = graphql(`
  fragment SystemStatusFields on SystemStatus {
    fingerprint
    queued
    running
    oldestQueuedSeconds
    arqQueueDepth
    succeededLastHour
    failedLastHour
    cancelledLastHour
    workers {
      id
      version
      host
      pid
      concurrency
      fingerprint
      settingsMatch
      comfyuiUrls
      inFlight
      lastBeat
    }
    backends {
      url
      healthy
      error
      running
      pending
      comfyuiVersion
      devices {
        name
        vramTotal
        vramFree
      }
    }
  }
`);

export const SystemStatusQuery = graphql(`
  query SystemStatus {
    systemStatus {
      ...SystemStatusFields
    }
  }
`);

export const SystemStatusSubscription = graphql(`
  subscription SystemStatusLive {
    systemStatus(intervalSeconds: 2) {
      ...SystemStatusFields
    }
  }
`);

export const InputQuery = graphql(`
  query Input($id: ID!) {
    input(id: $id) {
      id
      url
      thumbnailUrl
      width
      height
      mime
      sizeBytes
      filename
    }
  }
`);

export const ActiveGenerationEventsSubscription = graphql(`
  subscription ActiveGenerationEvents {
    myGenerationEvents {
      generationId
      seq
      kind
      status
      terminal
      progress {
        ...ProgressFields
      }
    }
  }
`);

export const ProposeTemplateMutation = graphql(`
  mutation ProposeTemplate($workflow: JSON!) {
    proposeTemplate(workflow: $workflow) {
      __typename
      ... on TemplateProposal {
        format
        params
        problems {
          field
          message
        }
      }
      ... on ValidationError {
        message
        errors {
          field
          message
        }
      }
      ... on NotAllowedError {
        message
      }
    }
  }
`);

export const SaveTemplateMutation = graphql(`
  mutation SaveTemplate($input: TemplateInput!) {
    saveTemplate(input: $input) {
      __typename
      ... on TemplatePayload {
        template {
          name
          title
          version
        }
      }
      ... on ValidationError {
        message
        errors {
          field
          message
        }
      }
      ... on NotAllowedError {
        message
      }
      ... on TemplateNameTakenError {
        message
      }
    }
  }
`);
