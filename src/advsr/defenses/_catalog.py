"""Registration of every defense under its spec name, with its settings and defaults."""

from __future__ import annotations

import functools
from typing import Annotated

import torch

from advsr.checks import check_int_range
from advsr.defenses.base import Chain, Defense
from advsr.defenses.deflection import PixelDeflection
from advsr.defenses.filters import MedianSmoothing
from advsr.defenses.jpeg import JPEGCompression
from advsr.defenses.quantize import BitDepthReduction, KMeansQuantization
from advsr.defenses.quilting import PatchBank, Quilting
from advsr.defenses.registry import register
from advsr.defenses.resizing import Interpolation, RandomResizePad, SRPurification
from advsr.defenses.sr_side import DihedralViews, ResizeByOne
from advsr.defenses.tvm import TVMDefense
from advsr.defenses.wavelet import WaveletDenoise
from advsr.errors import InputError
from advsr.settings import DATA, FILE, MODEL, WEIGHTS


def _resize_pad(ratio: float = 331 / 299) -> Defense:
    return RandomResizePad(ratio)


def _interpolation(
    mode: str = "bicubic", factor: float = 2.0, direction: str = "up", antialias: bool = True
) -> Defense:
    return Interpolation(mode, factor, direction, antialias)


def _resize_by_one() -> Defense:
    return ResizeByOne()


def _self_ensemble() -> Defense:
    return DihedralViews()


def _sr(
    model: Annotated[str, MODEL] = "demo-edsr",
    scale: int = 2,
    weights: Annotated[str | None, WEIGHTS] = None,
    denoise: str | None = "wavelet",
    sigma: float = 0.04,
    output: str = "sr",
) -> Defense:
    from advsr.models.sr import create_sr_model

    if denoise not in ("wavelet", "none", None):
        raise InputError(f"sr denoise must be 'wavelet' or 'none', got {denoise!r}")
    from advsr.models.sr import SR_MODELS

    entry = SR_MODELS.get(model)
    if weights is None and entry.needs_weights and scale not in entry.bundled:
        raise InputError(
            f"sr purification with {model} x{scale} needs weights=FILE (no bundled weights; "
            "random weights would purify nothing)"
        )
    sr_model = create_sr_model(model, scale, weights)
    pre = _wavelet(sigma=sigma) if denoise == "wavelet" else None  # 'none' parses as None
    return SRPurification(sr_model, scale, pre, output)  # type: ignore[arg-type]


def _wavelet(
    sigma: float | None = 0.04,
    wavelet: str = "db1",
    mode: str = "soft",
    method: str = "BayesShrink",
    ycbcr: bool = True,
    levels: int | None = None,
    legacy_sigma: bool = True,
) -> Defense:
    return WaveletDenoise(
        sigma=sigma,
        wavelet=wavelet,
        mode=mode,  # type: ignore[arg-type]
        wavelet_levels=levels,
        convert2ycbcr=ycbcr,
        method=method,  # type: ignore[arg-type]
        legacy_ycbcr_sigma=legacy_sigma,
    )


def _deflection(
    deflections: int = 200, window: int = 10, sigma: float = 0.04, denoise: bool = True
) -> Defense:
    return PixelDeflection(deflections=deflections, window=window, sigma=sigma, denoise=denoise)


def _tvm(
    p: float = 0.3,
    lam: float = 0.5,
    norm: int = 2,
    steps: int = 20,
    per_channel_mask: bool = True,
) -> Defense:
    return TVMDefense(p=p, lam=lam, norm=norm, steps=steps, per_channel_mask=per_channel_mask)


@functools.lru_cache(maxsize=4)
def _bank_from_data(
    data: str,
    images: int,
    skip: int,
    pattern: str | None,
    patch_size: int,
    max_patches: int | None,
    seed: int,
    size: int | None = None,
) -> PatchBank:
    from advsr.data.labelled import open_labelled

    if data == "samples":  # the 8 embedded photographs: natural images, no labels needed
        from advsr.data.imagenet import resize_center_crop
        from advsr.data.samples import sample_paths
        from advsr.io import read_image

        photos = [read_image(p) for p in sample_paths().values()]
        side = size or min(min(im.shape[-2:]) for im in photos)
        x = torch.cat([resize_center_crop(im, side) for im in photos])[skip : skip + images]
    else:
        ds = open_labelled(data, limit=skip + images, pattern=pattern, size=size)
        x = ds.x[skip : skip + images]
    if x.shape[0] == 0:
        raise InputError(f"no images left in {data} after skipping {skip} for the patch bank")
    g = torch.Generator().manual_seed(seed)
    return PatchBank.from_images(x, patch_size, max_patches=max_patches, generator=g)


def _quilting(
    bank: Annotated[str | None, FILE] = None,
    bank_data: Annotated[str | None, DATA] = None,
    bank_images: int = 1000,
    bank_skip: int = 0,
    bank_pattern: str | None = None,
    max_patches: int | None = 100_000,
    patch_size: int = 5,
    overlap: int | None = None,
    k: int = 10,
    stitch: str = "min-cut",
    seed: int = 0,
    bank_size: int | None = None,
) -> Quilting:
    check_int_range(bank_images, "quilting bank_images", 1, 1_000_000)
    check_int_range(bank_skip, "quilting bank_skip", 0, 10_000_000)
    if (bank is None) == (bank_data is None):
        raise InputError(
            "quilting needs a patch bank: bank=FILE (safetensors) or bank_data=DATASET "
            "(a labelled folder or samples, with bank_images, bank_skip, bank_pattern, "
            "bank_size: clean images the evaluation does not use)"
        )
    if bank is not None:
        pb = PatchBank.load(bank)
    else:
        assert bank_data is not None
        pb = _bank_from_data(
            bank_data,
            bank_images,
            bank_skip,
            bank_pattern,
            patch_size,
            max_patches,
            seed,
            bank_size,
        )
    return Quilting(pb, patch_size=patch_size, overlap=overlap, k=k, stitch=stitch)  # type: ignore[arg-type]


def _quilting_tvm(
    bank: Annotated[str | None, FILE] = None,
    bank_data: Annotated[str | None, DATA] = None,
    bank_images: int = 1000,
    bank_skip: int = 0,
    bank_pattern: str | None = None,
    max_patches: int | None = 100_000,
    k: int = 10,
    p: float = 0.5,
    lam: float = 0.03,
    bank_size: int | None = None,
) -> Defense:
    q = _quilting(
        bank,
        bank_data,
        bank_images,
        bank_skip,
        bank_pattern,
        max_patches,
        k=k,
        bank_size=bank_size,
    )
    return Chain(q, _tvm(p=p, lam=lam))


def _median(size: int | tuple[int, int] = (3, 3)) -> Defense:
    return MedianSmoothing(size)


def _bit_depth(bits: int | None = None, reduce: int | None = None) -> Defense:
    if bits is None and reduce is None:
        bits = 4
    return BitDepthReduction(bits, reduce=reduce)


def _kmeans(k: int = 8, iterations: int = 20, init: str = "k-means++") -> Defense:
    return KMeansQuantization(k, iterations=iterations, init=init)  # type: ignore[arg-type]


def _jpeg(quality: int = 75, subsampling: str = "4:2:0") -> Defense:
    return JPEGCompression(quality, subsampling)  # type: ignore[arg-type]


register(
    "tvm", _tvm, "total-variation minimisation of a Bernoulli-masked image (Guo et al.)", TVMDefense
)
register("median", _median, "median smoothing, any kh x kw window (Xu et al.)", MedianSmoothing)
register(
    "bit-depth",
    _bit_depth,
    "bit-depth reduction: bits=b (2^b-1 levels) or reduce=r",
    BitDepthReduction,
)
register("kmeans", _kmeans, "K-means colour quantisation, k colours per image", KMeansQuantization)
register(
    "jpeg", _jpeg, "JPEG compression (libjpeg via PIL; BPDA through kornia's)", JPEGCompression
)
register(
    "wavelet", _wavelet, "wavelet denoising: BayesShrink/VisuShrink, soft/hard", WaveletDenoise
)
register(
    "pixel-deflection",
    _deflection,
    "pixel deflection + wavelet denoising (Prakash)",
    PixelDeflection,
)
register("quilting", _quilting, "image quilting from a clean patch bank (Guo et al.)", Quilting)
register(
    "quilting-tvm",
    _quilting_tvm,
    "quilting then TVM (Guo et al., as compared by Mustafa)",
    Quilting,
    TVMDefense,
)
register(
    "resize-pad", _resize_pad, "random resize + zero padding (Xie et al. 2018)", RandomResizePad
)
register(
    "interpolation", _interpolation, "nearest/bilinear/bicubic: up, up-down, down-up", Interpolation
)
register(
    "resize-by-one", _resize_by_one, "shrink by one pixel and back (Choi et al. 2019)", ResizeByOne
)
register(
    "self-ensemble",
    _self_ensemble,
    "mean class probabilities over the 8 flips/rotations (Choi et al.'s SR defense)",
    DihedralViews,
)
register(
    "sr", _sr, "wavelet denoising + super-resolution (Mustafa et al. 2019, Alg. 1)", SRPurification
)
