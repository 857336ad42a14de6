"""Task runners: threads on one machine, or a Dask cluster for the work that shards.

Two stages shard naturally: synthetic generation (independent shard datasets, a sub-flow with
the runner chosen here: :func:`with_runner`) and pseudo-labelling (independent slices of the target
images: the ``ccssl-round`` task enters :func:`task_runner` itself and submits one task per slice,
see :func:`flows.ccssl.dask_labeler`). The runner:

- ``dask_workers == 0``: Prefect's thread pool in this process.
- ``dask_workers > 0`` and no address: a temporary local Dask cluster of that many single-threaded
  worker processes (``prefect-dask``), started for the sub-flow (or the round's pseudo-labelling)
  and closed after it.
- ``dask_address``: an existing Dask scheduler (e.g. ``tcp://gpu-box:8786``), for more machines.

Trust: Dask sends tasks and results as pickles, and a plain ``tcp://`` scheduler authenticates no
one, so anyone who reaches its port can run code on the workers and on this process. Use a
``tcp://`` address only on a trusted network (loopback, a private subnet, an SSH tunnel); a non-local
``tcp://`` address is logged as a warning. A ``tls://`` address connects with TLS and client
certificates: the files come from Dask's own configuration (``distributed.comm.tls.ca-file``,
``.client.cert``, ``.client.key``; e.g. ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``), and a ``tls://``
address without them is refused before any work.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from prefect import Flow
from prefect.task_runners import ThreadPoolTaskRunner

from animalpose.errors import ConfigError

log = logging.getLogger(__name__)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def dask_client_kwargs(address: str) -> dict:
    """Client arguments for the scheduler at ``address``: TLS security for ``tls://`` (see the module
    docstring); a warning for a non-local plain ``tcp://`` address; ConfigError for another scheme or a
    ``tls://`` address without certificate files."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme == "tls":
        from distributed.security import Security

        security = Security()  # reads distributed.comm.tls.* from Dask's configuration / environment
        missing = [k for k, v in (("ca-file", security.tls_ca_file), ("client.cert", security.tls_client_cert))
                   if not v]
        if missing:
            raise ConfigError("<flow>", "dask_address", f"{address} is TLS but Dask's configuration has no "
                              f"distributed.comm.tls.{' / '.join(missing)} (e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE)")
        return {"security": security}
    if parts.scheme not in ("tcp", "inproc", "ucx"):
        raise ConfigError("<flow>", "dask_address", f"{address}: expected tcp://host:port or tls://host:port")
    if parts.hostname not in LOCAL_HOSTS:
        log.warning("dask_address %s: plain TCP is unauthenticated and carries pickles; use it on a trusted "
                    "network only, or a tls:// scheduler", address)
    return {}


def task_runner(dask_workers: int = 0, dask_address: str | None = None):
    """The runner for a sharded sub-flow (see the module docstring)."""
    if dask_address or dask_workers > 0:
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address, client_kwargs=dask_client_kwargs(dask_address) or None)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "host": "127.0.0.1",
            }
        )
    return ThreadPoolTaskRunner(max_workers=max(1, min(4, os.cpu_count() or 1)))


def with_runner(sub_flow: Flow, dask_workers: int = 0, dask_address: str | None = None) -> Flow:
    """``sub_flow`` with the runner chosen by :func:`task_runner`."""
    return sub_flow.with_options(task_runner=task_runner(dask_workers, dask_address))
