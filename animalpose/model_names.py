"""The names of the pose networks, readable without torch (a config's ``model.name`` is checked against
them when it is loaded, e.g. by ``animalpose config show``). :data:`animalpose.models.factory.MODELS` maps
exactly these names, in this order, to their factories; the factory refuses to import otherwise."""

MODEL_NAMES: tuple[str, ...] = (
    "hourglass1", "hourglass2", "hourglass4", "hourglass8", "hourglass_quick",
    "pyranet4", "pyranet", "pyranet_quick",
    "simplebaseline18", "simplebaseline34", "simplebaseline50", "simplebaseline101", "simplebaseline152",
    "hrnet_w32", "hrnet_w48",
    "cpn50", "cpn101", "cpn_quick",
    "mspn_2stg", "mspn_3stg", "mspn_4stg", "mspn_quick",
    "rsn18", "rsn50", "rsn_quick",
    "lpn50", "lpn101", "lpn152", "lpn_quick",
    "grmi_resnet50", "grmi_resnet101", "grmi_quick",
)

#: the networks whose outputs are G-RMI's heatmaps + offset fields: they train and decode with ``codec.kind:
#: grmi``, and that codec with nothing else
GRMI_MODELS: tuple[str, ...] = ("grmi_resnet50", "grmi_resnet101", "grmi_quick")
