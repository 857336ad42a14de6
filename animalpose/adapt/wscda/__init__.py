"""WS-CDA: weakly- and semi-supervised cross-domain adaptation (Cao et al., ICCV 2019).

- ``joint_space``: the joint human + animal keypoint space and per-domain masks;
- ``network``: feature extractor, domain adaptation network, keypoint estimator, domain discriminator;
- ``losses``: L_DDL, L_pose and L = α·L_DDL + β·L_pose;
- ``grl``: gradient reversal layer and the DANN λ schedule;
- ``training``: one step of the alternating or the GRL min-max scheme, discriminator accuracy;
- ``mixing``: batches from labelled humans, a few labelled animals and unlabelled target animals;
- ``loop``: epochs of those steps with checkpoints; ``pplo``: pseudo-labels and the PPLO loop;
- ``datasets``: the three streams read from files; ``run``: :class:`WSCDARun`, a run on datasets as the
  paper's steps (``adversarial``, ``pplo_round(r)``), and ``run_wscda``, their composition.
"""

_RUN_NAMES = ("WSCDAConfig", "WSCDAResult", "WSCDARun", "WSCDASection", "run_wscda")


def __getattr__(name: str):
    """The dataset-level entry points (``WSCDARun``, ``run_wscda``, ``WSCDAConfig``) load the engine lazily."""
    if name in _RUN_NAMES:
        from animalpose.adapt.wscda import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
