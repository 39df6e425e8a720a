"""Official checkpoints from ../shared/data reproduce their published Set5 Y-PSNR (0.2 dB).

Convention: output clamped to [0, 1] and rounded to 8 bits, Y channel (BT.601), border =
scale, LR = the MATLAB-made Set5 files. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import pytest

from advsr.engine.store import ResultStore
from advsr.experiments.eval_sr import EvalSRConfig, eval_sr
from tests.conftest import SET5, SHARED, needs_shared

W = SHARED / "weights"
CASES = [
    ("carn-m", "carn_m/carn_m.pth", 2, 37.53),
    ("carn-m", "carn_m/carn_m.pth", 4, 31.92),
    ("imdn", "imdn/IMDN_x2.pth", 2, 38.00),
    ("imdn", "imdn/IMDN_x4.pth", 4, 32.21),
    ("vdsr", "vdsr/vdsr_x234_statedict.pth", 2, 37.53),
    ("vdsr", "vdsr/vdsr_x234_statedict.pth", 4, 31.35),
]


@needs_shared
@pytest.mark.parametrize(("model", "weights", "scale", "published"), CASES)
def test_official_checkpoint_psnr(model: str, weights: str, scale: int, published: float) -> None:
    cfg = EvalSRConfig(
        model=model, weights=str(W / weights), data=str(SET5), scale=scale, device="cpu"
    )
    res = eval_sr(cfg, ResultStore(":memory:"), progress=False)
    assert len(res.rows) == 5
    assert abs(res.mean["psnr"] - published) <= 0.2, res.mean
