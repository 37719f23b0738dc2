"""The API side of the job system: what GraphQL's resolvers ask of it.

- `generations`: create, cancel, retry and delete generations (`JobService`).
- `system_status`: the operators' view of queue, workers, backends and outcomes.
- `catalogs`: the merged model catalogue of all backends, cached briefly.
- `inputs`: the intake of uploaded images and masks.

The worker side is `jobs.worker`; what both sides share (Redis keys, the event bus, enqueueing, the
backend list, image storage) stays at the top of `jobs`.
"""
