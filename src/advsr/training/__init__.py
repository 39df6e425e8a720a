"""Training loops, kept out of :mod:`advsr.models` (models import no data): one module each.

* :mod:`advsr.training.sr`: L1 training of any zoo SR architecture (``advsr train-sr``), and
  the checkpoint/resume helpers the other loops share;
* :mod:`advsr.training.classifier`: cross-entropy training of a zoo classifier
  (``advsr train-classifier``);
* :mod:`advsr.training.refsr`: poisoned training of a RefSR model (BadRefSR,
  ``advsr train-refsr``).

Nothing is imported here, so importing one loop does not import the others' data.
"""
