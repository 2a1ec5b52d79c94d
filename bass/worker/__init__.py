"""`bass worker`: takes builds from a `bass serve`, checks out, runs the build entry,
reports. `runner` is the loop and one build's run, `api` its HTTP calls, `checkout` the
git side, `procs` the build entry's process tree, `cleanup` and `runs` what makes a
build's processes die with it and with its worker. The worker speaks to the server
only over HTTP (the worker API of docs/contracts.md): it imports nothing of the store,
the receiver or the UI."""

from __future__ import annotations

from bass.worker.runner import DequeueRefused, Worker, WorkspaceBusy

__all__ = ["DequeueRefused", "Worker", "WorkspaceBusy"]
