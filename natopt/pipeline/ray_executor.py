"""Tasks as Ray tasks: ``natopt optimize --workers N`` (a local Ray) or ``--ray-address ADDR``.

``RayExecutor.start`` starts a local Ray instance (``ray.init(num_cpus=N)``), joins a cluster
(``address``, ``"auto"`` for the one ``ray start --head`` left on this machine), or uses the
instance this process already runs (then it neither starts nor stops Ray). Ray is imported
here, lazily: without it, starting says which extra to install.

- ``share`` puts the big inputs into Ray's object store once (``ray.put``); every task of
  every batch gets the same reference.
- ``map`` keeps at most ``workers`` tasks in flight (a local instance: N; a cluster: its
  CPUs), each asking for one CPU, and collects them as they finish (one ``on_result`` per
  task, in this process). Each task sets ``torch.set_num_threads`` to its worker's share of
  the cores: the driver's threads over N for a local instance, one on a cluster (a task
  holds one CPU). Float results are bitwise those of the in-process executor when the
  thread counts agree (intra-op reductions reorder with the thread count).
- A task whose worker process dies (killed, out of memory, a lost node) is retried by Ray
  up to ``max_retries`` times, from the same inputs, so its result is unchanged; the
  result records the retries (Ray's attempt number, read from the worker's core worker,
  a private API: ``None`` where a Ray version lacks it). A task's own exception is not
  retried (it would raise again): it comes back as the result's error.
- Work Ray cannot finish (retries used up, the cluster gone) raises ``ExecutorError``:
  the run stops with one line instead of answering without that work. While tasks run,
  the cluster's control store (GCS) is asked every ``HEARTBEAT_S`` whether it is there
  (the core worker's GCS client, private API): a driver that lost it would otherwise wait,
  then be ended by Ray a minute later with no natopt error.

- ``latency_resource``: every ``measure_latency`` runs as a Ray task that requires one unit
  of that custom resource and no CPU. A cluster gives each node of the device kind being
  optimised for exactly one unit (``ray start --resources '{"NAME": 1}'``), so timings run
  only on those nodes, one at a time per node; a node started with ``--num-cpus 0`` as well
  takes no other task, so its timings run alone (``optimize`` itself times only between
  batches, while none of its tasks are in flight). The ONNX files (and their external data) go
  to the task by value; the pair comes back naming the node (id and IP). ``start`` refuses
  a resource the cluster does not offer, and a timing that waits while no node offers it
  any more (the latency node left) stops the run. Without it, timing runs in the driver, between
  batches.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

from natopt.errors import ExecutorError
from natopt.pipeline.executor import OnResult, TaskResult, run_task
from natopt.pipeline.verify_export import LatencyPair, measure_latency, onnx_files

__all__ = ["RayExecutor", "DEFAULT_RETRIES", "INSTALL_HINT", "require_ray"]

DEFAULT_RETRIES = 2
HEARTBEAT_S = 5.0  # while tasks run, the cluster is checked this often
CONNECT_S = 5.0  # joining: how long the cluster's address may take to accept a connection
INSTALL_HINT = "pip install 'natopt[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an ``ExecutorError`` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            f"--workers and --ray-address run on Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def _attempt_number() -> int | None:
    """How often Ray has retried the running task (0 on its first attempt)."""
    import ray

    core = getattr(ray._private.worker.global_worker, "core_worker", None)
    attempt = getattr(core, "get_current_task_attempt_number", None)
    return None if attempt is None else int(attempt())


def _ray_task(fn: Callable[[Any, Any], Any], shared: Any, task: Any, threads: int) -> TaskResult:
    # arrays come read-only from the object store; tasks only read them
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    return run_task(fn, shared, task, threads, retries=_attempt_number())


class RayExecutor:
    """Tasks on Ray workers; see the module docstring. Build it with ``start``."""

    def __init__(
        self,
        ray: Any,
        *,
        workers: int,
        threads: int,
        address: str | None,
        owns: bool,
        max_retries: int,
        latency_resource: str | None = None,
    ) -> None:
        self._ray = ray
        self.workers, self.threads, self.address = workers, threads, address
        self.owns, self.max_retries = owns, max_retries
        self.latency_resource = latency_resource
        options = {"num_cpus": 1, "max_retries": max_retries, "retry_exceptions": False}
        self._remote = ray.remote(_ray_task).options(**options)
        self._timer = None
        if latency_resource is not None:
            timing = options | {"num_cpus": 0, "resources": {latency_resource: 1}}
            self._timer = ray.remote(_ray_task).options(**timing)

    @classmethod
    def start(
        cls,
        *,
        workers: int | None = None,
        address: str | None = None,
        max_retries: int = DEFAULT_RETRIES,
        latency_resource: str | None = None,
    ) -> RayExecutor:
        """Start or join Ray; ``workers``: tasks in flight (default: the cluster's CPUs);
        ``latency_resource``: the custom resource latency timings require (checked here)."""
        ray = require_ray()
        owns = not ray.is_initialized()
        if owns:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray"
            try:
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, **_QUIET)
                else:
                    _check_reachable(address)
                    ray.init(address=address, **_QUIET)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
                raise ExecutorError(
                    f"cannot start or join {where}: {_reason(exc)} (start one with "
                    "`ray start --head`, then pass --ray-address auto)"
                ) from None
        resources = ray.cluster_resources()
        if latency_resource is not None and resources.get(latency_resource, 0) < 1:
            if owns:
                ray.shutdown()
            raise ExecutorError(_missing_resource(latency_resource, address, resources))
        cpus = max(1, int(resources.get("CPU", 1)))
        in_flight = workers or cpus
        local = address is None
        threads = max(1, torch.get_num_threads() // in_flight) if local else 1
        return cls(
            ray,
            workers=in_flight,
            threads=threads,
            address=address,
            owns=owns,
            max_retries=max_retries,
            latency_resource=latency_resource,
        )

    def share(self, value: Any) -> Any:
        return self._ray.put(value)

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Any],
        shared: Any,
        on_result: OnResult | None = None,
    ) -> list[TaskResult]:
        return self._run(self._remote, fn, tasks, shared, on_result, self.workers, self.threads)

    def measure_latency(self, before: Path, after: Path, **options: Any) -> LatencyPair:
        """In the driver without a latency resource; else a task on a node that offers it."""
        if self._timer is None:
            return measure_latency(before, after, **options)
        task = (_onnx_payload(before), _onnx_payload(after), options)
        [result] = self._run(self._timer, _time_onnx_pair, [task], None, None, 1, 1)
        if not result.ok:
            raise ExecutorError(
                f"timing latency on a node with the Ray resource {self.latency_resource!r} "
                f"failed: {result.error}"
            )
        pair: LatencyPair = result.value
        return pair

    def _run(
        self,
        remote: Any,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Any],
        shared: Any,
        on_result: OnResult | None,
        in_flight: int,
        threads: int,
    ) -> list[TaskResult]:
        """``map`` on ``remote`` (a task's Ray options), at most ``in_flight`` at a time."""
        ray = self._ray
        results: list[TaskResult | None] = [None] * len(tasks)
        waiting = list(reversed(range(len(tasks))))
        pending: dict[Any, int] = {}
        try:
            while waiting or pending:
                while waiting and len(pending) < in_flight:
                    index = waiting.pop()
                    pending[remote.remote(fn, shared, tasks[index], threads)] = index
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=HEARTBEAT_S)
                if not ready:
                    self._check_cluster()
                    if remote is self._timer and not self._offers_latency_resource():
                        _cancel(ray, pending)  # it waits for a node no longer there
                        raise ExecutorError(
                            f"no node of the Ray cluster offers {self.latency_resource!r} "
                            "any more (did the latency node leave?); nothing was written: "
                            "check the cluster (`ray status`) and run again"
                        )
                    continue
                index = pending.pop(ready[0])
                results[index] = result = ray.get(ready[0])
                if on_result is not None:
                    on_result(index, result)
        except ray.exceptions.RayError as exc:
            _cancel(ray, pending)
            raise ExecutorError(
                f"Ray lost this run's work ({type(exc).__name__}: {_first_line(exc)}); "
                f"nothing was written: check the cluster (`ray status`) and run again"
            ) from None
        return [r for r in results if r is not None]

    def _offers_latency_resource(self) -> bool:
        """Whether a live node still offers the latency resource (else a timing waits)."""
        return self._ray.cluster_resources().get(self.latency_resource, 0) >= 1

    def _check_cluster(self) -> None:
        """Raise (a ``RayError``) if the cluster's control store does not answer within
        ``HEARTBEAT_S``: Ray itself would end this process a minute after losing it."""
        gcs = getattr(self._ray._private.worker.global_worker, "gcs_client", None)
        with suppress(AttributeError, TypeError):  # another Ray's client: Ray's own handling
            gcs.internal_kv_exists(b"natopt", namespace=b"natopt", timeout=HEARTBEAT_S)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "workers": self.workers,
            "address": self.address,
            "threads_per_task": self.threads,
            "max_retries": self.max_retries,
            "latency_resource": self.latency_resource,
        }

    def close(self) -> None:
        """Stop the local instance or leave the cluster, if ``start`` started or joined it."""
        if self.owns:
            self._ray.shutdown()


def _cancel(ray: Any, refs: Any) -> None:
    with suppress(Exception):  # the cluster may be gone: cancelling is best effort
        for ref in refs:
            ray.cancel(ref, force=True)


OnnxPayload = tuple[str, dict[str, bytes]]  # the model's file name, every file's bytes


def _onnx_payload(path: Path) -> OnnxPayload:
    """An ONNX model by value: its file and its external-data files, each by its path
    relative to the model's folder (as the model names it)."""
    files = onnx_files(path)
    return path.name, {str(f.relative_to(path.parent)): f.read_bytes() for f in files}


def _time_onnx_pair(
    _shared: Any, task: tuple[OnnxPayload, OnnxPayload, dict[str, Any]]
) -> LatencyPair:
    """On a latency node: write both models into a temporary folder each, time them, and
    name this node."""
    import ray

    before, after, options = task
    with tempfile.TemporaryDirectory(prefix="natopt-latency-") as tmp:
        paths = []
        for side, (name, files) in zip(("before", "after"), (before, after), strict=True):
            folder = Path(tmp) / side
            folder.mkdir()
            for file, content in files.items():
                (folder / file).parent.mkdir(parents=True, exist_ok=True)
                (folder / file).write_bytes(content)
            paths.append(folder / name)
        pair = measure_latency(*paths, **options)
    node = {
        "id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
    }
    return dataclasses.replace(pair, node=node)


def _missing_resource(name: str, address: str | None, resources: dict[str, float]) -> str:
    where = f"the Ray cluster at {address!r}" if address else "this Ray instance"
    offered = sorted(
        k for k in resources if not k.startswith("node:") and k != "object_store_memory"
    )
    return (
        f"--latency-resource {name}: {where} offers no {name!r} resource (it offers "
        f"{', '.join(offered)}); start each latency node with "
        f"`ray start --resources '{{\"{name}\": 1}}'`"
    )


def _check_reachable(address: str) -> None:
    """Raise ``ConnectionError`` unless something accepts a connection at the cluster's
    control store within ``CONNECT_S``: ``ray.init`` waits minutes on an address where
    nothing listens. ``"auto"`` is resolved as Ray does (a private helper: where it is
    missing, or for a ``ray://`` client address, Ray's own handling)."""
    import ray

    if address.startswith("ray://"):
        return
    resolve = getattr(ray._private.services, "canonicalize_bootstrap_address", None)
    try:
        resolved = resolve(address) if resolve is not None else address
    except Exception:  # an address Ray cannot parse: ray.init says why
        return
    if resolved is None:  # "auto" found no cluster: ray.init says so at once
        return
    host, _, port = resolved.rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_S).close()
    except OSError as exc:
        raise ConnectionError(
            f"nothing answers at {resolved} ({exc.strerror or type(exc).__name__})"
        ) from None


_QUIET = {"logging_level": logging.ERROR, "log_to_driver": False}  # the CLI shows progress


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reason(exc: BaseException) -> str:
    """``exc``'s first line, and what to do when the cluster refused this driver's token."""
    cause: BaseException | None = exc
    while cause is not None:
        if "InvalidAuthToken" in str(cause):
            return f"{_first_line(exc)}: the cluster wants its token (set RAY_AUTH_MODE=token)"
        cause = cause.__cause__ or cause.__context__
    return _first_line(exc)
