"""animalpose: pretrain pose networks on synthetic animals and adapt them to real ones."""

__version__ = "0.1.0"
