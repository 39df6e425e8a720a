"""Attacks on SR models (and, later, classifiers) on one gradient-step engine."""

from advsr.attacks._loop import StepResult, eval_mode, project, random_start, run_steps
from advsr.attacks.objectives import REFERENCES, sr_deviation, sr_reference, sr_to_target
from advsr.attacks.sr import (
    SRAttackResult,
    basic_attack,
    masked_psnr,
    partial_attack,
    sr_attack_metrics,
)

__all__ = [
    "REFERENCES",
    "SRAttackResult",
    "StepResult",
    "basic_attack",
    "eval_mode",
    "masked_psnr",
    "partial_attack",
    "project",
    "random_start",
    "run_steps",
    "sr_attack_metrics",
    "sr_deviation",
    "sr_reference",
    "sr_to_target",
]
