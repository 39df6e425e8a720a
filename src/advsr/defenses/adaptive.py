"""Defended classifiers and the adaptive-attack wrappers BPDA and EOT (Athalye et al. 2018).

A defended classifier is ``classifier o defense`` (:func:`defend`). Attacking it directly is
the *adaptive* setting; attacking the bare classifier and only then applying the defense is
the *non-adaptive* setting the defense papers report. Two tools make the adaptive attack
meaningful:

* :func:`bpda` - Backward Pass Differentiable Approximation: the forward pass runs the real
  defense, the backward pass differentiates ``defense.surrogate`` instead (identity for
  most defenses, a differentiable JPEG for JPEG). Implemented as
  ``surrogate(x) + (defense(x) - surrogate(x)).detach()``, so the value is exactly the
  defense's output and the gradient is exactly the surrogate's.
* :func:`eot` - Expectation over Transformation: each forward pass draws ``n`` independent
  transformations of every image (one batch of ``n * N``), and :class:`DefendedClassifier`
  returns ``log mean_t softmax(f(t(x)))``, the log of the expected class probabilities.
  Every attack then optimises the expected prediction (cross-entropy becomes
  ``-log E_t[p_y]``, the C&W margin is taken on expected log-probabilities), and its
  gradient is the exact gradient of that expectation over the ``n`` draws.

:func:`adaptive` combines them the standard way: BPDA when the defense is not
differentiable, EOT when it is stochastic.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
from torch import nn

from advsr.checks import check_int_range
from advsr.defenses.base import Defense
from advsr.errors import InputError
from advsr.memory import ChunkFn, micro_batch_size, micro_batched

__all__ = ["BPDA", "EOT", "DefendedClassifier", "adaptive", "bpda", "defend", "eot"]


class BPDA(Defense):
    """The defense forward, the surrogate's gradient backward (see :func:`bpda`).

    Shape:
        ``(N, 3, H, W)`` -> the wrapped defense's output shape.
    """

    differentiable = True

    def __init__(self, defense: Defense) -> None:
        super().__init__()
        self.defense = defense
        self.scale = defense.scale

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        """As random as the wrapped defense (so EOT still applies on top of BPDA)."""
        return self.defense.stochastic

    @property
    def views(self) -> int:  # type: ignore[override]
        """Stacked views per image: the wrapped defense's."""
        return int(getattr(self.defense, "views", 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            real = self.defense(x, generator)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return real  # no gradient to approximate: the defense's output, bit for bit
        approx = self.defense.surrogate(x)
        if approx.shape != real.shape:
            raise InputError(
                f"surrogate of {type(self.defense).__name__} gives {tuple(approx.shape)}, "
                f"the defense {tuple(real.shape)}"
            )
        return approx + (real - approx).detach()

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Output size of the wrapped defense."""
        return self.defense.output_size(h, w)


MAX_EOT = 1_000
"""The most EOT samples per gradient step."""


class EOT(Defense):
    """``n`` independent draws of a stochastic defense, stacked along the batch.

    Shape:
        ``(N, 3, H, W)`` -> ``(n * N, 3, H', W')`` (draw-major: rows ``t * N + i``).
    """

    def __init__(self, defense: Defense, samples: int) -> None:
        super().__init__()
        self.defense = defense
        self.samples = check_int_range(samples, "EOT samples", 1, MAX_EOT)
        self.scale = defense.scale

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        """As random as the wrapped defense."""
        return self.defense.stochastic

    @property
    def views(self) -> int:  # type: ignore[override]
        """Stacked views per image: the draws (times the wrapped defense's own views)."""
        return self.samples * int(getattr(self.defense, "views", 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.defense(x.repeat(self.samples, 1, 1, 1), generator)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Output size of the wrapped defense."""
        return self.defense.output_size(h, w)


def bpda(defense: Defense) -> Defense:
    """BPDA wrapper; a differentiable defense is returned unchanged."""
    return defense if defense.differentiable else BPDA(defense)


def eot(defense: Defense, n: int) -> Defense:
    """EOT over ``n`` draws; a deterministic defense (or ``n == 1``) is returned unchanged."""
    check_int_range(n, "EOT samples", 1, MAX_EOT)
    return EOT(defense, n) if defense.stochastic and n > 1 else defense


def adaptive(defense: Defense, eot_samples: int = 10) -> Defense:
    """The adaptive-attack view of a defense: BPDA if needed, then EOT if stochastic."""
    return eot(bpda(defense), eot_samples) if defense.stochastic else bpda(defense)


class DefendedClassifier(nn.Module):
    """``classifier(defense(x))`` with the defense's randomness from a seeded generator.

    With an :class:`EOT` defense, the output is ``log`` of the mean softmax over the draws
    (see the module docstring), which attacks use as logits.

    Passes run in micro-batches within the memory budget (:mod:`advsr.memory`), so a
    gradient through an SR defense and the classifier needs the memory of a few images,
    whatever the batch size. A random defense is applied image by image, each image with a
    generator of its own derived from one draw of :attr:`generator` per call and the image's
    position in the batch: the draws, and so the results, do not depend on how the batch
    is cut into micro-batches.

    Args:
        classifier: logits model on ``[0, 1]`` images.
        defense: any :class:`Defense` (possibly wrapped by :func:`bpda` / :func:`eot`).
        seed: seed of the generator that stochastic defenses draw from; the generator
            advances with every forward pass (fresh draws per attack step), and is reset by
            :meth:`reseed`.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, K)``.
    """

    def __init__(self, classifier: nn.Module, defense: Defense, seed: int = 0) -> None:
        super().__init__()
        self.classifier = classifier
        self.defense = defense
        self.generator = torch.Generator().manual_seed(seed)
        self.num_classes = getattr(classifier, "num_classes", None)
        self._signature: tuple[object, ...] | None = None

    def reseed(self, seed: int) -> None:
        """Restart the defense's random draws from ``seed``."""
        self.generator.manual_seed(seed)

    def _key(self) -> tuple[object, ...]:
        """What decides the memory of a pass: the classifier and the defenses (wrappers by
        kind, since :func:`adaptive` makes new ones per call)."""
        if self._signature is None:
            parts: list[object] = [id(self.classifier)]
            for m in self.defense.modules():
                if isinstance(m, (BPDA, EOT)):
                    parts.append((type(m).__name__, getattr(m, "samples", None)))
                elif isinstance(m, Defense):
                    parts.append(id(m))
            self._signature = tuple(parts)
        return self._signature

    def _rows(self, x: torch.Tensor, start: int, seed: int) -> torch.Tensor:
        n = int(getattr(self.defense, "views", 1))
        # a defense without a useful gradient (JPEG through PIL, K-means) runs without a
        # graph: autograd could not go through it anyway (BPDA is the way to attack it)
        grad = contextlib.nullcontext() if self.defense.differentiable else torch.no_grad()
        with grad:
            if self.defense.stochastic:  # image by image, each with its own draws
                views = torch.cat(
                    [
                        self.defense(
                            x[j : j + 1],
                            torch.Generator().manual_seed(seed + 7919 * (start + j)),
                        )
                        for j in range(x.shape[0])
                    ]
                )
            else:
                views = self.defense(x, self.generator)
        z = self.classifier(views)
        if n == 1:
            return z
        logp = torch.log_softmax(z, dim=1)
        if self.defense.stochastic:  # image-major rows j * n + t
            logp = logp.view(x.shape[0], n, -1).transpose(0, 1)
        else:  # draw-major rows t * N + j
            logp = logp.view(n, x.shape[0], -1)
        # EOT draws or self-ensemble views: log of the mean class probabilities
        return torch.logsumexp(logp, dim=0) - math.log(n)

    def partition(self, x: torch.Tensor) -> tuple[ChunkFn, int]:
        """One pass's plan: the row function, with this pass's random draws fixed (one draw
        of :attr:`generator`), and the micro-batch size within the memory budget (see
        :func:`advsr.memory.value_and_grad`)."""
        seed = 0
        if self.defense.stochastic:
            seed = int(torch.randint(0, 2**40, (1,), generator=self.generator))
        fn = functools.partial(self._rows, seed=seed)
        size = max(1, x.shape[0])
        if x.shape[0] > 1 and not self.training:
            size = micro_batch_size(fn, x, self._key(), "the defended classifier", self)
        return fn, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn, size = self.partition(x)
        return micro_batched(fn, x, size)


def defend(classifier: nn.Module, defense: Defense | None, seed: int = 0) -> nn.Module:
    """``classifier o defense`` (the classifier itself when ``defense`` is None)."""
    if defense is None:
        return classifier
    return DefendedClassifier(classifier, defense, seed).train(classifier.training)
