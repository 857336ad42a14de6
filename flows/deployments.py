"""Every deployment, in one place, and ``serve_deployments`` for ``animalpose serve``.

Deployments (``<flow>/<name>``), each with its default parameters:

- ``ccssl/<species>`` for horse, tiger, dog, sheep, elephant (the CC-SSL species templates);
- ``wscda/<species>`` for the same species;
- ``human/coco`` (generated humans by default; real COCO or MPII through ``train_data``);
- ``pretrain/<species>``;
- ``retrain/ccssl-<species>`` and ``retrain/wscda-<species>``: scheduled retraining. Each carries a
  weekly cron schedule (default ``0 3 * * 1``: Mondays 03:00 UTC) that is **inactive** until turned
  on: ``animalpose serve --activate-schedules``, ``ANIMALPOSE_RETRAIN_ACTIVE=1``, or the toggle in
  the Prefect UI. ``ANIMALPOSE_RETRAIN_CRON`` and ``ANIMALPOSE_RETRAIN_TZ`` change the schedule.

Run one with ``prefect deployment run ccssl/horse`` (``-p preset=smoke`` to override a parameter)
while ``animalpose serve`` (or ``python -m flows.deployments``) serves them. Schedules only fire
against a Prefect server (``PREFECT_API_URL``), never in Prefect's ephemeral mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prefect.schedules import Cron

SPECIES = ("horse", "tiger", "dog", "sheep", "elephant")
HUMAN_DATASETS = ("coco",)  # MPII needs real data: run the human flow with train_data / val_data
METHODS = ("ccssl", "wscda")
DEFAULT_CRON = "0 3 * * 1"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_PRESET = "quick"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: the flow (by name), its deployment name, default parameters, optional schedule."""

    flow: str
    name: str
    parameters: dict = field(default_factory=dict)
    cron: str | None = None
    description: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def deployment_specs(cron: str = DEFAULT_CRON, preset: str = DEFAULT_PRESET) -> list[DeploymentSpec]:
    """All deployment definitions (pure data; validated by :func:`build_deployments`)."""
    specs = []
    for sp in SPECIES:
        specs.append(DeploymentSpec("ccssl", sp, {"species": sp, "preset": preset},
                                    description=f"CC-SSL on {sp}: synthetic cad source -> photo target, rounds"))
        specs.append(DeploymentSpec("wscda", sp, {"species": sp, "preset": preset},
                                    description=f"WS-CDA on {sp}: human + few labelled animals -> target, PPLO"))
        specs.append(DeploymentSpec("pretrain", sp, {"species": sp, "preset": preset},
                                    description=f"source-only pretraining on synthetic {sp}"))
        for method in METHODS:
            specs.append(DeploymentSpec("retrain", f"{method}-{sp}", {"species": sp, "method": method,
                                                                      "preset": preset}, cron=cron,
                                        description=f"weekly {method} retraining on new {sp} target data, "
                                                    "promoted only if it beats the champion"))
    for ds in HUMAN_DATASETS:
        specs.append(DeploymentSpec("human", ds, {"dataset": ds, "preset": preset},
                                    description=f"human pose training and evaluation ({ds})"))
    return specs


def flows_by_name() -> dict:
    from flows.ccssl import ccssl_flow
    from flows.evaluate import evaluate_flow
    from flows.human import human_flow
    from flows.pretrain import pretrain_flow
    from flows.retrain import retrain_flow
    from flows.wscda import wscda_flow

    return {"ccssl": ccssl_flow, "wscda": wscda_flow, "human": human_flow, "pretrain": pretrain_flow,
            "retrain": retrain_flow, "evaluate": evaluate_flow}


def build_deployments(active: bool | None = None, cron: str | None = None, timezone: str | None = None,
                      preset: str = DEFAULT_PRESET) -> list:
    """Prefect ``RunnerDeployment`` objects for every spec.

    ``active`` (default: ``$ANIMALPOSE_RETRAIN_ACTIVE``, else False) switches the retraining schedules
    on; ``cron`` / ``timezone`` default to ``$ANIMALPOSE_RETRAIN_CRON`` / ``$ANIMALPOSE_RETRAIN_TZ``,
    else weekly on Monday 03:00 UTC. Parameters are checked against each flow's signature.
    """
    active = _flag(os.environ.get("ANIMALPOSE_RETRAIN_ACTIVE")) if active is None else active
    cron = cron or os.environ.get("ANIMALPOSE_RETRAIN_CRON") or DEFAULT_CRON
    timezone = timezone or os.environ.get("ANIMALPOSE_RETRAIN_TZ") or DEFAULT_TIMEZONE
    import warnings

    out = []
    with warnings.catch_warnings():
        # pydantic on the flows' parameter models: a parameter named ``schema`` shadows BaseModel.schema, harmless
        warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)
        flows = flows_by_name()
        for spec in deployment_specs(cron, preset):
            fl = flows[spec.flow]
            schedules = [Cron(spec.cron, timezone=timezone, active=active)] if spec.cron else []
            out.append(fl.to_deployment(name=spec.name, parameters=spec.parameters, schedules=schedules,
                                        description=spec.description, tags=["animalpose", spec.flow]))
    return out


def serve_deployments(active: bool = False, cron: str | None = None, limit: int | None = None,
                      deployments: list | None = None, say=None) -> None:
    """Serve every deployment from this process until interrupted (blocks; Ctrl-C or SIGTERM stops).

    ``deployments``: built already (:func:`build_deployments`, e.g. while the servers started); ``say(text)``
    is told as each species' deployments are registered (:func:`register`), then once when serving starts.
    Schedules are not paused on shutdown: pausing is one API call per deployment after the signal (a
    Ctrl-C hung for over a minute on it), and the next ``serve`` sets every schedule's state anyway.
    """
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    say = say or print
    deployments = build_deployments(active=active, cron=cron) if deployments is None else deployments
    runner = Runner(pause_on_shutdown=False, limit=limit)
    asyncio.run(register(runner, deployments, say))
    say(f"Serving deployments ({len(deployments)}); in another terminal: prefect deployment run ccssl/horse")
    try:
        asyncio.run(runner.start())
    except TerminationSignal:
        pass


def _group(deployment) -> str:
    """The species (or data set) a deployment is for: ``horse`` for ``ccssl/horse`` and ``retrain/wscda-horse``."""
    return deployment.name.rsplit("-", 1)[-1]


async def register(runner, deployments: list, say) -> None:
    """Register ``deployments`` with the runner's Prefect API one after the other, with one ``say`` line as
    each species' are done (registering all 26 at once took 42 s against 25 s one by one on 2 loaded cores:
    the server's SQLite store takes one write at a time)."""
    import time

    t0 = time.monotonic()
    groups: dict[str, list] = {}
    for d in deployments:
        groups.setdefault(_group(d), []).append(d)
    done = 0
    for group in groups.values():
        for d in group:
            await runner.aadd_deployment(d)
        done += len(group)
        names = ", ".join(f"{d.flow_name}/{d.name}" for d in group)
        say(f"registered {names} ({done}/{len(deployments)}, {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":  # python -m flows.deployments [--active]
    import sys

    serve_deployments(active="--active" in sys.argv[1:])
