"""``python -m advsr`` runs the command line (through :mod:`advsr._entry`, which handles
Ctrl-C from the first instant)."""

from advsr._entry import main

main()
