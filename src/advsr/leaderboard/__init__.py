"""The SR robustness leaderboard: a fixed, versioned protocol run as experiment cells.

* :mod:`.protocol`: the protocols (``v1``) and their quick variants, the default data;
* :mod:`.entries`: the ranked models (bicubic, the demo models, official weights, files);
* :mod:`.score`: the headline score and the ranking (ties, missing entries);
* :mod:`.build`: the cells through the driver and the document from the stored rows;
* :mod:`.provenance`: version, commit, command, hashes, device and date of a run;
* :mod:`.site`: the static site (sortable table, curves, transfer matrices, model pages).

``advsr leaderboard`` (:mod:`advsr.cli.leaderboard`) is the command line.
"""

from advsr.leaderboard.build import Leaderboard, build_leaderboard, leaderboard_cells
from advsr.leaderboard.entries import DEFAULT_ENTRIES, Entry, parse_entries
from advsr.leaderboard.protocol import PROTOCOLS, Protocol, default_data, get_protocol
from advsr.leaderboard.score import headline_score, rank_rows
from advsr.leaderboard.site import write_site

__all__ = [
    "DEFAULT_ENTRIES",
    "PROTOCOLS",
    "Entry",
    "Leaderboard",
    "Protocol",
    "build_leaderboard",
    "default_data",
    "get_protocol",
    "headline_score",
    "leaderboard_cells",
    "parse_entries",
    "rank_rows",
    "write_site",
]
