"""The worker: arq runs the generate job; everything a job does, one concern per module.

- app: the arq application (`build_worker`, `run_worker`), its job function and lifecycle hooks;
- arq_worker: `SafelightWorker`, arq's Worker with wake-ups, pauses and a clean close;
- control: wake-ups and cancel requests from the control channel;
- heartbeat / recovery: who is alive, and resuming what a dead worker left;
- run: one generation's run, composed of claim, submit (with deliver: inputs onto the backend), follow,
  collect and retry, and outcomes (the ways it ends); runtime: what every job of a worker shares.
"""
