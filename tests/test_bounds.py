"""Upper bounds and refusals found by the fuzz (issue 26): every count an attack or a defense
takes is bounded (the bound is in the one-line message), the thread count is bounded by the
CPUs, Ray addresses that are empty or do not answer as Ray are refused quickly, a local Ray
listens on 127.0.0.1 only, non-finite or integer weights and perturbations are refused, and
dataset folders do not drop broken links or FIFOs silently."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from advsr.attacks import create_attack
from advsr.errors import AdvsrWarning, DatasetError, InputError, ModelLoadError
from advsr.io import save_safetensors


def _one_line_error(res: Any, *needles: str) -> None:
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advsr: error: "), res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------------ attacks


@pytest.mark.parametrize(
    ("spec", "setting", "value", "bound"),
    [
        ("pgd@8/255", "steps", 100_001, "100000"),
        ("pgd@8/255", "steps", 1e20, "100000"),  # a float pydantic cannot make an int
        ("pgd@8/255", "restarts", 1001, "1000"),
        ("mi-fgsm@8/255", "steps", 10**12, "100000"),
        ("apgd@8/255", "steps", 100_001, "100000"),
        ("apgd@8/255", "restarts", 1001, "1000"),
        ("apgd-t@8/255", "targets", 1001, "1000"),
        ("square@8/255", "queries", 1_000_001, "1000000"),
        ("deepfool", "steps", 100_001, "100000"),
        ("deepfool", "candidates", 10_001, "10000"),
        ("cw-l2", "steps", 100_001, "100000"),
        ("cw-l2", "binary_search_steps", 101, "100"),
        ("fpgap@0.05", "steps", 100_001, "100000"),
        ("pgap@0.05", "steps", 100_001, "100000"),
        ("pgap@0.05", "solver_options", {"max_iter": 10**9}, "1000000"),
        ("basic@8/255", "steps", 100_001, "100000"),
        ("partial@8/255", "steps", 100_001, "100000"),
        ("universal@8/255", "steps", 100_001, "100000"),
        ("universal@8/255", "batch_size", 4097, "4096"),
        ("ensemble@8/255", "members", ["apgd"] * 101, "100"),
    ],
)
def test_attack_counts_are_bounded(spec: str, setting: str, value: Any, bound: str) -> None:
    with pytest.raises(InputError, match=setting) as info:
        create_attack(spec, **{setting: value})
    assert bound in str(info.value) and "\n" not in str(info.value)


def test_attack_bounds_are_inclusive() -> None:
    def settings(spec: str, **kw: Any) -> dict[str, Any]:
        return create_attack(spec, **kw).settings.model_dump()

    assert settings("pgd@8/255", steps=100_000, restarts=1000)["steps"] == 100_000
    assert settings("square@8/255", queries=1_000_000)["queries"] == 1_000_000
    assert settings("pgd@8/255:steps=20.0")["steps"] == 20  # integral floats pass


def test_attack_steps_bound_through_the_cli(cli) -> None:
    res = cli("attack-clf", "--attack", "pgd@8/255", "--steps", "100001", "--limit", "1")
    _one_line_error(res, "100000")


# ------------------------------------------------------------------------------ defenses


def _bank() -> Any:
    from advsr.defenses.quilting import PatchBank

    return PatchBank.from_images(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(
    ("build", "bound"),
    [
        ("median-side", "99"),
        ("kmeans-k", "256"),
        ("kmeans-iterations", "10000"),
        ("tvm-steps", "10000"),
        ("deflections", "100000"),
        ("deflection-window", "1000"),
        ("quilting-k", "1000"),
        ("quilting-patch", "64"),
        ("quilting-block", str(1 << 30)),
        ("bank-patches", "10000000"),
        ("resize-pad-ratio", "4"),
        ("resize-pad-inf", "4"),
        ("interpolation-factor", "16"),
        ("sr-scale", "16"),
        ("wavelet-levels", "32"),
    ],
)
def test_defense_counts_are_bounded(build: str, bound: str) -> None:
    from advsr.defenses.deflection import PixelDeflection
    from advsr.defenses.filters import MedianSmoothing
    from advsr.defenses.quantize import KMeansQuantization
    from advsr.defenses.quilting import PatchBank, Quilting
    from advsr.defenses.resizing import Interpolation, RandomResizePad, SRPurification
    from advsr.defenses.tvm import TVMDefense
    from advsr.defenses.wavelet import WaveletDenoise

    builders = {
        "median-side": lambda: MedianSmoothing((1000, 1000)),
        "kmeans-k": lambda: KMeansQuantization(257),
        "kmeans-iterations": lambda: KMeansQuantization(8, iterations=10_001),
        "tvm-steps": lambda: TVMDefense(steps=10**9),
        "deflections": lambda: PixelDeflection(deflections=10**9),
        "deflection-window": lambda: PixelDeflection(window=10**6),
        "quilting-k": lambda: Quilting(_bank(), k=1001),
        "quilting-patch": lambda: Quilting(_bank(), patch_size=65),
        "quilting-block": lambda: Quilting(_bank(), block_elements=2**40),
        "bank-patches": lambda: PatchBank.from_images(torch.rand(1, 3, 8, 8), max_patches=10**8),
        "resize-pad-ratio": lambda: RandomResizePad(1e9),
        "resize-pad-inf": lambda: RandomResizePad(float("inf")),
        "interpolation-factor": lambda: Interpolation(factor=1e6),
        "sr-scale": lambda: SRPurification(nn.Identity(), scale=1000),
        "wavelet-levels": lambda: WaveletDenoise(wavelet_levels=10**6),
    }
    with pytest.raises(InputError) as info:
        builders[build]()
    assert bound in str(info.value) and "\n" not in str(info.value)


def test_median_windows_stay_within_the_memory_budget() -> None:
    """The kthvalue path runs over blocks of planes within the budget (same result as one
    pass), and a window one plane of which exceeds the budget is refused naming it."""
    from advsr.defenses.filters import median_filter
    from advsr.memory import set_max_memory

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    whole = median_filter(x, (5, 4))
    try:
        set_max_memory("1M")  # 32 x 32 x 20 x 16 B = 0.3 MiB a plane: blocks of 3 planes
        assert torch.equal(median_filter(x, (5, 4)), whole)
        with pytest.raises(InputError, match=r"memory budget of 1 MiB.*--max-memory"):
            median_filter(x, (99, 99))
    finally:
        set_max_memory(None)


def test_defense_bound_through_the_cli(cli) -> None:
    res = cli("defend", "--attack", "fgsm@8/255", "--defense", "median:size=1000x1000")
    _one_line_error(res, "99")


# ------------------------------------------------------------------------------ threads


def test_threads_are_bounded_by_the_cpus() -> None:
    from advsr.devices import set_threads, usable_cpus

    cpus = usable_cpus()
    with pytest.raises(InputError, match=f"at most {cpus} "):
        set_threads(str(cpus + 1))
    before = torch.get_num_threads()
    try:
        assert set_threads(str(cpus)) == cpus
    finally:
        torch.set_num_threads(before)


def test_huge_thread_env_is_one_line_and_exit_2(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from advsr.devices import usable_cpus

    before = torch.get_num_threads()
    monkeypatch.setenv("ADVSR_THREADS", "100000")
    _one_line_error(cli("datasets"), f"at most {usable_cpus()}", "100000")
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------------ Ray


def test_empty_ray_address_is_refused(cli) -> None:
    from advsr.engine.backend import Backend

    for backend in ("ray", "local"):
        with pytest.raises(InputError, match="--address is empty"):
            Backend(backend, address="")
    _one_line_error(cli("defend", "--backend", "ray", "--address", ""), "--address is empty")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts, reads and never answers (not Ray)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conns.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for c in conns:
        c.close()
    srv.close()


def test_address_that_is_not_ray_fails_within_seconds(silent_server: int) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from advsr.engine.backend import PROBE_TIMEOUT_S, Backend, connect

    start = time.monotonic()
    with pytest.raises(InputError, match=r"does not answer as Ray \(no gRPC greeting within 5 s"):
        connect(Backend("ray", address=f"127.0.0.1:{silent_server}"))
    assert time.monotonic() - start < 2 * PROBE_TIMEOUT_S + 2


def test_local_ray_listens_on_loopback_only() -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from advsr.engine.backend import Backend, connect

    ray.shutdown()  # a local instance another test may have started
    try:
        connect(Backend("ray", workers=1))
        node = ray._private.worker.global_worker.node
        assert node.node_ip_address == "127.0.0.1"
        host, _, port = node.gcs_address.rpartition(":")
        assert host == "127.0.0.1"
        assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # restored
        outside = ray._private.services.node_ip_address_from_perspective()
        if not outside.startswith("127."):  # the machine's own address: nothing listens
            with pytest.raises(OSError):
                socket.create_connection((outside, int(port)), timeout=2).close()
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------ weights


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    from advsr.models.loading import load_weights

    model = nn.Linear(3, 2)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd["weight"][0, 1] = float("nan")
    save_safetensors(tmp_path / "nan.safetensors", sd)
    with pytest.raises(ModelLoadError, match=r"nan\.safetensors: tensor weight holds 1 NaN"):
        load_weights(model, tmp_path / "nan.safetensors")
    sd["weight"][0, 1] = float("inf")
    torch.save(sd, tmp_path / "inf.pt")
    with pytest.raises(ModelLoadError, match=r"inf\.pt: tensor weight holds 1 NaN or infinite"):
        load_weights(model, tmp_path / "inf.pt")
    sd["weight"] = torch.ones(2, 3, dtype=torch.int64)
    torch.save(sd, tmp_path / "int.pt")
    with pytest.raises(ModelLoadError, match=r"tensor weight is int64, the model expects float"):
        load_weights(model, tmp_path / "int.pt")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated
def test_non_finite_torchscript_is_refused(tmp_path: Path) -> None:
    from advsr.models.loading import load_torchscript

    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.bias[0] = float("nan")
    torch.jit.save(torch.jit.script(model), tmp_path / "nan.pt")
    with pytest.raises(ModelLoadError, match="tensor bias holds 1 NaN"):
        load_torchscript(tmp_path / "nan.pt")


def test_nan_weights_through_the_cli(cli, tmp_path: Path) -> None:
    from advsr.models.classifiers import create_classifier

    net = create_classifier("digits-cnn").net
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[key].view(-1)[0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_safetensors(path, sd)
    res = cli("attack-clf", "--attack", "fgsm@8/255", "--weights", str(path), "--limit", "1")
    _one_line_error(res, "nan.safetensors", key, "NaN")


def test_non_finite_perturbation_is_refused(tmp_path: Path) -> None:
    from advsr.attacks.universal import load_perturbation, save_perturbation

    delta = torch.zeros(1, 3, 4, 4)
    save_perturbation(tmp_path / "ok.safetensors", delta, {})
    assert torch.equal(load_perturbation(tmp_path / "ok.safetensors"), delta)
    delta[0, 0, 0, 0] = float("nan")
    save_perturbation(tmp_path / "nan.safetensors", delta, {})
    with pytest.raises(InputError, match="holds 1 NaN or infinite values of 48"):
        load_perturbation(tmp_path / "nan.safetensors")
    save_perturbation(tmp_path / "int.safetensors", torch.zeros(1, 3, 4, 4, dtype=torch.int8), {})
    with pytest.raises(InputError, match="must be floating point, got int8"):
        load_perturbation(tmp_path / "int.safetensors")


# ------------------------------------------------------------------------------ folders


def _folder(path: Path) -> Path:
    path.mkdir()
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(img).save(path / "good.png")
    return path


def test_broken_link_named_like_an_image_is_refused(tmp_path: Path, cli) -> None:
    from advsr.data.folders import open_folder

    d = _folder(tmp_path / "data")
    (d / "x.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(DatasetError, match=r"x\.png is a broken symbolic link"):
        open_folder(d, 2)
    _one_line_error(cli("eval-sr", "--data", str(d), "--scale", "2"), "x.png", "broken")
    paired = _folder(tmp_path / "paired")  # SelfExSR layout, the LR partner a broken link
    (paired / "good.png").rename(paired / "a_HR.png")
    (paired / "a_LR.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(DatasetError, match=r"a_LR\.png is a broken symbolic link"):
        open_folder(paired, 2)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    from advsr.data.folders import open_folder

    d = _folder(tmp_path / "data")
    os.mkfifo(d / "y.png")  # opening it would block until a writer comes
    with pytest.raises(DatasetError, match=r"y\.png is a FIFO"):
        open_folder(d, 2)


def test_other_odd_entries_are_named_in_a_warning(tmp_path: Path) -> None:
    from advsr.data.folders import open_folder

    d = _folder(tmp_path / "data")
    (d / "notes").symlink_to(tmp_path / "gone")
    (d / ".#good.png").symlink_to("user@host.123")  # an editor's lock file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_folder(d, 2)
    assert len(ds) == 1
    messages = [str(w.message) for w in caught if issubclass(w.category, AdvsrWarning)]
    (message,) = [m for m in messages if m.startswith("skipped")]
    assert "skipped 2 entries" in message and "notes (a broken symbolic link" in message
    assert ".#good.png" in message


def test_the_api_sets_threads_by_the_cli_rule_and_import_changes_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import sys, advsr; assert 'torch' not in sys.modules, 'import advsr imported torch'\n"
        "import torch; before = torch.get_num_threads()\n"
        "assert advsr.set_threads(1) == 1 and torch.get_num_threads() == 1\n"
        "print(before)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import advsr

    with pytest.raises(InputError, match="threads must be auto or a whole number"):
        advsr.set_threads("many")
