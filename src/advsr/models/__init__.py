"""Models: SR architectures and their zoo (``advsr.models.sr``)."""
