"""Micro-batched gradient passes (advsr.memory): same values and gradients as one pass,
peak graph bounded by the budget, budgets parsed and refused with one line."""

from __future__ import annotations

import functools

import pytest
import torch

from advsr.defenses.adaptive import adaptive, defend
from advsr.defenses.registry import create_defense
from advsr.errors import InputError
from advsr.memory import (
    MicroBatched,
    graph_bytes_per_item,
    max_memory,
    micro_batch_size,
    micro_batched,
    parse_memory,
    set_max_memory,
    value_and_grad,
)


@pytest.fixture
def budget():
    """Set a budget for one test, back to the default afterwards."""
    yield set_max_memory
    set_max_memory(None)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()


def _grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    xr = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xr), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xr)
    return loss.detach(), g


def test_parse_memory() -> None:
    assert parse_memory("3") == 3 * 2**30
    assert parse_memory("1.5G") == int(1.5 * 2**30)
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("2GiB") == parse_memory("2gb") == 2 * 2**30
    assert parse_memory("3000000B") == 3_000_000
    assert 0 < parse_memory("10%") < parse_memory("20%")
    for bad in ("", "lots", "-1G", "0", "1e400", "10000T", "5 %x"):
        with pytest.raises(InputError):
            parse_memory(bad)


def test_budget_sources(budget, monkeypatch) -> None:
    monkeypatch.delenv("ADVSR_MAX_MEMORY", raising=False)
    default = max_memory()
    assert 2**20 <= default <= 2 * 2**30
    monkeypatch.setenv("ADVSR_MAX_MEMORY", "100M")
    assert max_memory() == 100 * 2**20
    budget("200M")  # the explicit setting wins over the environment
    assert max_memory() == 200 * 2**20


def test_micro_batched_equals_one_pass() -> None:
    net = _net()
    x, y = torch.rand(7, 3, 12, 12), torch.arange(7) % 5
    whole = _grad(net, x, y)

    def fn(v: torch.Tensor, start: int) -> torch.Tensor:
        return net(v)

    for size in (1, 2, 3, 7):
        xr = x.clone().requires_grad_(True)
        out = micro_batched(fn, xr, size)
        loss = torch.nn.functional.cross_entropy(out, y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xr)
        assert torch.allclose(loss, whole[0], atol=1e-5)
        assert torch.allclose(g, whole[1], atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(micro_batched(fn, x, 2), net(x), atol=1e-6)


def test_graph_bytes_counts_saved_activations_not_parameters() -> None:
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    fn = lambda v, s: torch.relu(conv(v))  # noqa: E731
    small = graph_bytes_per_item(fn, torch.rand(2, 3, 16, 16), conv)
    big = graph_bytes_per_item(fn, torch.rand(2, 3, 32, 32), conv)
    # the relu keeps its 16-channel output, conv its input: 4x the pixels, ~4x the bytes
    assert 3.5 < big / small < 4.5
    assert small >= 16 * 16 * 16 * 4  # at least the relu's output of one item


def test_too_small_budget_is_refused_with_the_option(budget) -> None:
    net = _net()
    budget("1M")
    x = torch.rand(2, 3, 256, 256)
    with pytest.raises(InputError, match="--max-memory"):
        micro_batch_size(lambda v, s: net(v), x, "test-small", "the test net", net)


def test_defended_classifier_same_results_any_micro_batch(budget) -> None:
    """A deterministic and a random defense give the same logits and input gradients
    whatever the budget (the random one draws per image)."""
    net = _net()
    x, y = torch.rand(6, 3, 96, 96), torch.arange(6) % 5
    for spec in ("median:size=3x3", "resize-pad"):
        d = create_defense(spec)
        results = []
        for size in ("4G", "5M"):
            budget(size)
            clf = defend(net, adaptive(d, 3), seed=5).eval()
            fn = functools.partial(clf._rows, seed=0)
            chunk = micro_batch_size(fn, x, clf._key(), "test", clf)
            assert (chunk >= 6) == (size == "4G"), (spec, size, chunk)
            results.append(_grad(clf, x, y))
        assert torch.allclose(results[0][0], results[1][0], atol=1e-5), spec
        assert torch.allclose(results[0][1], results[1][1], atol=1e-6), spec


def _three_per_micro_batch(budget):
    """A net whose input batch sizes are recorded in ``calls``, wrapped in
    :class:`MicroBatched` under a budget of three of its 128 px images, and 8 images."""
    net = _net()
    calls: list[int] = []
    net.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    wrapped = MicroBatched(net, "the test net")
    x, y = torch.rand(8, 3, 128, 128), torch.arange(8) % 5
    per = graph_bytes_per_item(lambda v, s: net(v), x, net)
    budget(f"{int(per * 1.5 * 3)}B")  # three images per micro-batch
    return net, wrapped, calls, x, y


def test_micro_batched_module_bounds_chunks(budget) -> None:
    net, wrapped, calls, x, y = _three_per_micro_batch(budget)
    calls.clear()
    loss, g = _grad(wrapped, x, y)
    # the one-image measurement, the forward, then the recomputing backward
    assert calls[0] == 1 and max(calls) <= 3 and sum(calls[1:]) == 2 * 8
    ref = _grad(net, x, y)
    assert torch.allclose(g, ref[1], atol=1e-6) and torch.allclose(loss, ref[0], atol=1e-5)
    net.train()  # training passes are left alone
    calls.clear()
    wrapped(x)
    assert calls == [8]
    net.num_classes = 5  # attributes the wrapper lacks are the module's
    assert wrapped.what == "the test net" and wrapped.num_classes == 5


def test_partial_key_is_stable() -> None:
    """A new partial per call shares the measurement of the same classifier and defense."""
    net = _net()
    d = create_defense("median:size=3x3")
    a, b = defend(net, adaptive(d), seed=0), defend(net, adaptive(d), seed=1)
    assert a._key() == b._key()
    assert a._key() != defend(net, adaptive(create_defense("median:size=3x3")))._key()


def test_value_and_grad_one_forward_per_micro_batch(budget) -> None:
    """The fused pass: the same loss and gradient as one whole-batch pass, each image
    through the network once (against twice for the recomputing backward)."""
    net, wrapped, calls, x, y = _three_per_micro_batch(budget)
    wrapped.partition(x)  # the one-image measurement
    calls.clear()

    def ce(z: torch.Tensor, rows: slice) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(z, y[rows], reduction="none")

    loss, g = value_and_grad(wrapped, x, ce)
    assert calls == [3, 3, 2]
    ref = _grad(net, x, y)
    assert torch.allclose(g, ref[1], atol=1e-6)
    assert torch.allclose(loss.sum(), ref[0], atol=1e-5)
    # a module that plans nothing: itself on the whole batch
    calls.clear()
    _, g2 = value_and_grad(net, x, ce)
    assert calls == [8] and torch.allclose(g2, ref[1], atol=1e-6)


def test_attack_steps_fused_match_whole_batch(budget) -> None:
    """I-FGSM on a defended classifier with a random defense: the fused micro-batched
    steps give the examples of one whole-batch pass per step."""
    from advsr.attacks.base import create_attack

    net = _net()
    x, y = torch.rand(6, 3, 64, 64), torch.arange(6) % 5
    d = create_defense("resize-pad")
    outs = []
    for size in ("4G", "2M"):
        budget(size)
        clf = defend(net, adaptive(d, 2), seed=3).eval()
        fn = functools.partial(clf._rows, seed=0)
        assert (micro_batch_size(fn, x, clf._key(), "t", clf) >= 6) == (size == "4G")
        attack = create_attack("ifgsm", eps=8 / 255, steps=3)
        outs.append(attack(clf, x, y, generator=torch.Generator().manual_seed(1)).x_adv)
    assert torch.allclose(outs[0], outs[1], atol=1e-6)


def test_the_default_budget_runs_one_item_at_a_time_when_one_does_not_fit(monkeypatch) -> None:
    """The default budget (no --max-memory, no $ADVSR_MAX_MEMORY) is a preference: a pass
    whose one item exceeds it runs item by item while the item fits in 1/6 of the machine;
    a budget the user gave stays a wall."""
    import advsr.memory as mem

    monkeypatch.delenv("ADVSR_MAX_MEMORY", raising=False)
    mem.set_max_memory(None)
    net = _net()
    x = torch.rand(2, 3, 256, 256)
    one = mem.SAFETY * mem.graph_bytes_per_item(lambda v, s: net(v), x, net)
    monkeypatch.setattr(mem, "_machine_memory", lambda: int(one * 8))  # default: one / 2
    assert mem.max_memory() < one
    assert micro_batch_size(lambda v, s: net(v), x, "one-at-a-time", "the test net", net) == 1
    monkeypatch.setattr(mem, "_machine_memory", lambda: int(one * 4))  # item > 1/6 machine
    with pytest.raises(InputError, match="--max-memory"):
        micro_batch_size(lambda v, s: net(v), x, "one-at-a-time", "the test net", net)
    monkeypatch.setattr(mem, "_machine_memory", lambda: int(one * 8))
    monkeypatch.setenv("ADVSR_MAX_MEMORY", "1M")  # the user's budget (below one item): a wall
    with pytest.raises(InputError, match="--max-memory"):
        micro_batch_size(lambda v, s: net(v), x, "one-at-a-time", "the test net", net)
