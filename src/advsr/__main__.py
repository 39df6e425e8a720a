"""``python -m advsr`` runs the command line."""

from advsr.cli import main

main()
