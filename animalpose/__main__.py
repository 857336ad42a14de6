"""``python -m animalpose ...`` (also what ``torchrun -m animalpose train ...`` runs)."""

from animalpose.cli import main

if __name__ == "__main__":
    main()
