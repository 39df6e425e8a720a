"""Reading and writing images: the only place where tensors meet numpy arrays and PIL.

Every image read here follows the image contract of DESIGN.md: ``float32`` tensor of shape
``(1, 3, H, W)``, RGB, values in ``[0, 1]``. Grayscale is repeated to 3 channels, alpha is
dropped (not composited: a transparent pixel keeps its stored colour), 16-bit data is divided
by 65535 (not 255) and kept at that precision. :func:`image_info` says from the header which
of these a file needs. Writing is lossless PNG (8 or 16 bit).

Example:
    >>> import torch, tempfile, pathlib
    >>> x = torch.rand(1, 3, 8, 8)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png"
    >>> write_image(p, x)
    >>> y = read_image(p)
    >>> bool((y - x).abs().max() <= 0.5 / 255 + 1e-6)
    True
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from advsr.checks import check_image
from advsr.errors import ImageReadError, InputError, ModelLoadError, ShapeError, brief

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "array_to_image",
    "check_output_path",
    "encode_png",
    "file_sha256",
    "image_file",
    "image_header",
    "image_info",
    "image_to_array",
    "list_images",
    "load_state_dict",
    "max_pixels",
    "read_image",
    "save_safetensors",
    "stack_images",
    "write_image",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

StackPolicy = Literal["error", "center-crop", "pad"]


def array_to_image(arr: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W)``, ``(H, W, 1|2|3|4)`` integer or float array to the image contract.

    Integer arrays are scaled by the maximum of their dtype (255 for uint8, 65535 for
    uint16); float arrays must already lie in ``[0, 1]`` (values outside are refused, not
    clipped). Grayscale is
    repeated to RGB, a 2nd (gray+alpha) or 4th (RGBA) channel is dropped (not composited
    onto a background: a transparent pixel keeps its stored colour).

    Shape:
        ``(H, W[, C])`` -> ``(1, 3, H, W)``.
    """
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ShapeError(f"cannot interpret an array of shape {a.shape} as an image")
    if a.shape[2] in (2, 4):  # drop alpha
        a = a[:, :, : a.shape[2] - 1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    f: np.ndarray
    if a.dtype == np.bool_:
        f = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        if info.min < 0:
            raise ShapeError(f"signed integer images ({a.dtype}) are not supported")
        f = a.astype(np.float64) / float(info.max)
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
        if np.isnan(f).any() or lo < -1e-6 or hi > 1.0 + 1e-6:
            raise ShapeError(
                f"float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                "(scale 8-bit data by 1/255 first)"
            )
        f = np.clip(f, 0.0, 1.0)
    else:
        raise ShapeError(f"unsupported image dtype {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1), dtype=np.float32))
    return t.unsqueeze(0)


def image_to_array(x: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Quantise one image to an ``(H, W, 3)`` uint8 (``bits=8``) or uint16 array.

    Shape:
        ``(1, 3, H, W)`` or ``(3, H, W)`` -> ``(H, W, 3)``.
    """
    if x.ndim == 3:
        x = x.unsqueeze(0)
    check_image(x, "image")
    if x.shape[0] != 1:
        raise ShapeError(f"expected a single image (batch of 1), got a batch of {x.shape[0]}")
    if bits not in (8, 16):
        raise InputError(f"bits must be 8 or 16, got {bits}")
    peak = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    q = (x[0].detach().to("cpu", torch.float64).clamp(0, 1) * peak).round()
    return q.permute(1, 2, 0).numpy().astype(dtype)


def _pil_to_array(img: PILImage.Image) -> np.ndarray:
    """Decode a PIL image to a numpy array with its true bit depth."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)
    if mode == "I":
        arr = np.asarray(img)
        # PNG 16-bit grayscale is decoded as mode "I" by some Pillow versions.
        if arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16)
        raise ImageReadError("32-bit integer images are not supported")
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    # palette, CMYK, YCbCr, ...: let PIL convert (keeping transparency out of the picture)
    return np.asarray(img.convert("RGBA" if "A" in mode or "transparency" in img.info else "RGB"))


def _read_tiff16(path: Path) -> np.ndarray | None:
    """Multi-channel 16-bit TIFF through tifffile (Pillow cannot hold 16-bit RGB)."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile comes with scikit-image
        return None
    try:
        arr = tifffile.imread(str(path))
    except Exception as exc:  # tifffile raises many kinds of errors on corrupt data
        raise ImageReadError(f"cannot decode TIFF {path}: {exc}") from None
    return np.asarray(arr)


def _read_png16(path: Path) -> np.ndarray:
    """Multi-channel 16-bit PNG through pypng (Pillow would reduce it to 8 bits)."""
    import png

    try:
        with path.open("rb") as fh:  # pypng leaves a file it opened itself unclosed
            width, height, rows, info = png.Reader(file=fh).asDirect()
            arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    except Exception as exc:  # pypng raises its own error classes on corrupt data
        raise ImageReadError(f"corrupt or truncated PNG {path}: {exc}") from None
    return arr.reshape(height, width, info["planes"])


DEFAULT_MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The largest image (height x width) advsr decodes: ``$ADVSR_MAX_PIXELS``, default 100
    million (10000 x 10000). A header claiming more is refused before any pixel is decoded.

    Raises:
        InputError: ``$ADVSR_MAX_PIXELS`` is not a positive integer.
    """
    text = os.environ.get("ADVSR_MAX_PIXELS")
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"ADVSR_MAX_PIXELS must be a positive integer, got {text!r}")
    return value


def image_file(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a regular file (not missing, a folder, a pipe or a device).

    Raises:
        ImageReadError: otherwise.
    """
    p = Path(path)
    if p.is_dir():
        raise ImageReadError(f"expected an image file, got a directory: {p}")
    if not p.exists():
        raise ImageReadError(f"no such image file: {p}")
    if not p.is_file():
        raise ImageReadError(f"not a regular file (a pipe, a device or a socket?): {p}")
    return p


@dataclass(frozen=True)
class ImageInfo:
    """What an image file holds, from its header: what :func:`read_image` converts.

    Attributes:
        height: rows.
        width: columns.
        mode: the file's Pillow mode (``L``, ``LA``, ``RGB``, ``RGBA``, ``P``, ``I;16``...).
        channels: stored channels before the conversion to RGB: 1 (gray), 2 (gray + alpha),
            3 (colour) or 4 (colour + alpha; a palette with transparency counts as 4).
        bits: bits per channel as decoded: 1 (bilevel), 8, 16, or 32 (float ``F``).
    """

    height: int
    width: int
    mode: str
    channels: int
    bits: int

    @property
    def gray(self) -> bool:
        """One colour channel: :func:`read_image` copies it to R, G and B."""
        return self.channels in (1, 2)

    @property
    def alpha(self) -> bool:
        """An alpha channel (or palette transparency): :func:`read_image` drops it."""
        return self.channels in (2, 4)


_MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "F": 1, "LA": 2, "La": 2, "RGBA": 4, "RGBa": 4, "PA": 4}


def _info(img: PILImage.Image) -> ImageInfo:
    """:class:`ImageInfo` of an opened (not yet decoded) image."""
    mode = img.mode
    if mode.startswith("I;16"):
        return ImageInfo(img.size[1], img.size[0], mode, 1, 16)
    channels = _MODE_CHANNELS.get(mode, 3)
    if mode == "P" and "transparency" in img.info:
        channels = 4
    bits = {"1": 1, "I": 16, "F": 32}.get(mode, 16 if _is_16bit_colour(img) else 8)
    if bits == 16 and img.format == "PNG":  # Pillow shows 16-bit gray + alpha as RGBA
        tiles = getattr(img, "tile", None) or []
        raw = str(tiles[0][3]) if tiles and len(tiles[0]) > 3 else ""
        channels = _MODE_CHANNELS.get(raw.split(";")[0], channels)
    return ImageInfo(img.size[1], img.size[0], mode, channels, bits)


def image_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Size, channels and bit depth of an image file, from its header (no pixel decoded).

    Raises:
        ImageReadError: not a readable image, or larger than :func:`max_pixels`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.png"
        >>> PILImage.new("L", (4, 3)).save(p)
        >>> info = image_info(p); (info.height, info.width, info.gray, info.alpha, info.bits)
        (3, 4, True, False, 8)
    """
    p = image_file(path)
    try:
        with _open(p) as img:
            info = _info(img)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageReadError(f"not a readable image {p}: {brief(exc)}") from None
    _check_pixels(p, info.height, info.width)
    return info


def image_header(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` from an image file's header, without decoding the pixels.

    Raises:
        ImageReadError: not a readable image, or larger than :func:`max_pixels`.
    """
    info = image_info(path)
    return info.height, info.width


@contextmanager
def _open(p: Path) -> Iterator[PILImage.Image]:
    """``PIL.Image.open`` with Pillow's own size limit lifted: advsr checks the header against
    :func:`max_pixels` itself, before decoding, so that one limit (which the user can
    change) applies."""
    saved = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        with PILImage.open(p) as img:
            yield img
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def _check_pixels(p: Path, h: int, w: int) -> None:
    limit = max_pixels()
    if h * w > limit:
        raise ImageReadError(
            f"{p} claims {w}x{h} pixels, more than the limit of {limit:,} "
            "(raise ADVSR_MAX_PIXELS to read it)"
        )


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read a PNG/JPEG/BMP/TIFF file into the image contract.

    Args:
        path: the image file.

    Returns:
        float32 tensor in ``[0, 1]``.

    Raises:
        ImageReadError: missing file, a directory, not an image, truncated or corrupt data.

    Shape:
        ``(1, 3, H, W)``.
    """
    p = image_file(path)
    try:
        with _open(p) as img:
            _check_pixels(p, img.size[1], img.size[0])
            fmt = img.format
            bits16_rgb = _is_16bit_colour(img)
            img.load()
            arr = _pil_to_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"not a readable image (PNG/JPEG/BMP/TIFF): {p}") from None
    except PILImage.DecompressionBombError as exc:
        raise ImageReadError(f"{p} is too large to decode safely: {brief(exc)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"corrupt or truncated image {p}: {brief(exc)}") from None
    if bits16_rgb:
        hi = _read_tiff16(p) if fmt == "TIFF" else _read_png16(p)
        if hi is not None:
            arr = hi
    if arr.ndim == 3 and arr.shape[2] > 4:
        raise ImageReadError(f"{p} has {arr.shape[2]} channels; expected 1-4")
    try:
        return array_to_image(arr)
    except ShapeError as exc:
        raise ImageReadError(f"{p}: {exc}") from None


def _is_16bit_colour(img: PILImage.Image) -> bool:
    """True for 16-bit multi-channel files, which Pillow silently reduces to 8 bits."""
    if img.format == "PNG":
        # PNG IHDR: Pillow keeps the raw bit depth in the tile's raw mode ("RGB;16B", ...)
        tiles = getattr(img, "tile", None) or []
        return any(";16" in str(t[3] if len(t) > 3 else "") for t in tiles) and img.mode in (
            "RGB",
            "RGBA",
            "LA",
        )
    if img.format == "TIFF":
        bps = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None
        if isinstance(bps, tuple):
            return any(b == 16 for b in bps) and len(bps) > 1
        return False
    return False


def write_image(
    path: str | os.PathLike[str], x: torch.Tensor, *, bits: int = 8, overwrite: bool = True
) -> None:
    """Write one image as lossless PNG (8 or 16 bit per channel).

    Args:
        path: target file; its suffix must be ``.png``; parent folders are created.
        x: one image.
        bits: 8 or 16.
        overwrite: refuse to replace an existing file when False.

    Shape:
        ``(1, 3, H, W)`` or ``(3, H, W)``.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"images are written as lossless PNG; use a .png name, not {p.name!r}")
    if p.exists() and not overwrite:
        raise InputError(f"refusing to overwrite existing file {p}")
    arr = image_to_array(x, bits=bits)
    p.parent.mkdir(parents=True, exist_ok=True)
    if bits == 8:
        PILImage.fromarray(arr, mode="RGB").save(p, format="PNG", optimize=False)
    else:
        import png

        h, w, _ = arr.shape
        with p.open("wb") as fh:
            png.Writer(w, h, greyscale=False, bitdepth=16).write(fh, arr.reshape(h, w * 3))


def encode_png(x: torch.Tensor) -> bytes:
    """One image as 8-bit PNG bytes (for reports).

    Shape:
        ``(1, 3, H, W)`` or ``(3, H, W)``.
    """
    import io as _io

    buf = _io.BytesIO()
    PILImage.fromarray(image_to_array(x), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension) directly inside ``folder``, sorted by name."""
    d = Path(folder)
    if not d.exists():
        raise ImageReadError(f"no such folder: {d}")
    if not d.is_dir():
        raise ImageReadError(f"expected a folder, got a file: {d}")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def stack_images(images: Sequence[torch.Tensor], policy: StackPolicy = "error") -> torch.Tensor:
    """Stack single images (or batches) of possibly different sizes into one batch.

    Args:
        images: tensors ``(n_i, 3, H_i, W_i)``.
        policy: what to do when sizes differ: ``"error"`` raises, ``"center-crop"`` crops
            every image to the smallest height and width, ``"pad"`` zero-pads each image at
            the bottom and right to the largest height and width.

    Returns:
        the batch.

    Shape:
        list of ``(n_i, 3, H_i, W_i)`` -> ``(sum n_i, 3, H, W)``.
    """
    if len(images) == 0:
        raise InputError("cannot stack an empty list of images")
    for i, im in enumerate(images):
        check_image(im, f"images[{i}]")
    sizes = {tuple(im.shape[-2:]) for im in images}
    if len(sizes) == 1:
        return torch.cat(list(images), dim=0)
    if policy == "error":
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise ShapeError(
            f"images have different sizes ({listed}); pass policy='center-crop' or 'pad', "
            "or keep them as a list"
        )
    if policy == "center-crop":
        h = min(s[0] for s in sizes)
        w = min(s[1] for s in sizes)
        out = []
        for im in images:
            top = (im.shape[-2] - h) // 2
            left = (im.shape[-1] - w) // 2
            out.append(im[..., top : top + h, left : left + w])
        return torch.cat(out, dim=0)
    if policy == "pad":
        h = max(s[0] for s in sizes)
        w = max(s[1] for s in sizes)
        out = [
            torch.nn.functional.pad(im, (0, w - im.shape[-1], 0, h - im.shape[-2])) for im in images
        ]
        return torch.cat(out, dim=0)
    raise InputError(f"unknown stack policy {policy!r}; use 'error', 'center-crop' or 'pad'")


# --- weights -----------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weight file's bytes (cached per path, size and modification time: see
    :func:`advsr.digest.file_sha256`)."""
    from advsr import digest

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"no such weight file: {p}")
    return digest.file_sha256(p)


WEIGHT_SUFFIXES = frozenset({".safetensors", ".pt", ".pth", ".th", ".ckpt", ".bin"})
# containers that training scripts wrap a state_dict in, in the order they are tried
# (BasicSR stores "params" and an EMA copy "params_ema"; the EMA copy is what it tests)
_CONTAINERS = ("params_ema", "params", "state_dict", "model", "net", "generator", "netG")


def _pickled_classes(path: Path) -> list[str]:
    """Classes a torch pickle refers to, read from its opcodes without executing anything."""
    import pickletools
    import zipfile

    def scan(stream: object) -> set[str]:
        found: set[str] = set()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(stream):  # type: ignore[arg-type]
            if op.name == "GLOBAL" and isinstance(arg, str):
                found.add(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.add(".".join(strings[-2:]))
            if isinstance(arg, str):
                strings.append(arg)
        return found

    names: set[str] = set()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for n in z.namelist():
                    if n.endswith("data.pkl"):
                        names |= scan(z.read(n))
        else:  # legacy format: magic, protocol, sys info, then the object
            with path.open("rb") as fh:
                for _ in range(4):
                    names |= scan(fh)
    except Exception:  # a damaged stream: the caller's message does not depend on this
        pass
    harmless = ("torch._utils.", "collections.", "torch.storage.", "builtins.")
    return sorted(
        (
            n
            for n in names
            if not n.startswith(harmless)
            and not n.endswith("Storage")
            and n not in ("torch.nn.parameter.Parameter", "torch._tensor._rebuild_from_type_v2")
        ),
        key=lambda n: (n.startswith("torch."), n),  # the user's own classes first
    )


def _unwrap_state_dict(obj: object, path: Path, key: str | None) -> dict[str, torch.Tensor]:
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise ModelLoadError(f"{path} has no entry {key!r} (it has: {have})")
        obj = obj[key]
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((c for c in _CONTAINERS if isinstance(obj.get(c), dict)), None)
        if inner is None:
            break
        obj = obj[inner]
    if not isinstance(obj, dict) or not obj:
        raise ModelLoadError(f"{path} holds no state_dict (found {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path} holds no tensors (keys: {', '.join(map(str, obj))[:200]})")
    prefix = "module."
    if all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def load_state_dict(
    path: str | os.PathLike[str], *, key: str | None = None
) -> dict[str, torch.Tensor]:
    """Load a state_dict safely: safetensors, or a torch file with ``weights_only=True``.

    Nothing that needs unpickling code is ever loaded: a whole pickled model is refused with
    a message naming its classes and how to convert it. Containers (``params_ema``,
    ``params``, ``state_dict``, ``model``...) are unwrapped and a common ``module.`` prefix
    (DataParallel) is removed; non-tensor entries (epoch counters...) are dropped.

    Args:
        path: ``.safetensors``, ``.pt``, ``.pth``, ``.th``, ``.ckpt`` or ``.bin`` file.
        key: take this entry of the top-level dict instead of guessing the container.

    Returns:
        tensors on the CPU, by key.

    Raises:
        ModelLoadError: missing or unreadable file, pickled code, no tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"no such weight file: {p}")
    if p.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelLoadError(
            f"{p} is not a weight file (unknown type {p.suffix or 'without a suffix'!r}); "
            f"use one of {', '.join(sorted(WEIGHT_SUFFIXES))}"
        )
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise ModelLoadError(f"corrupt safetensors file {p}: {brief(exc)}") from None
        return _unwrap_state_dict(obj, p, key)
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns before it refuses: the refusal says it
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        classes = _pickled_classes(p)
        if not classes:  # not a pickle of objects at all: damaged or another format
            raise ModelLoadError(
                f"cannot read weight file {p}: not a torch file ({brief(exc, 120)})"
            ) from None
        named = f" (it pickles {', '.join(classes[:4])})"
        raise ModelLoadError(
            f"refused {p}: it needs unpickling code{named}, which could run anything. Convert it "
            "once where you trust it: m = torch.load(f, weights_only=False); "
            "safetensors.torch.save_file(m.state_dict(), 'model.safetensors'), or run "
            "`advsr convert` on a state_dict file"
        ) from None
    except Exception as exc:  # corrupt zip, truncated file...
        why = brief(exc) or type(exc).__name__
        raise ModelLoadError(f"cannot read weight file {p}: {why}") from None
    return _unwrap_state_dict(obj, p, key)


def save_safetensors(
    path: str | os.PathLike[str],
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write tensors as ``.safetensors`` (contiguous CPU copies; shared storage is split)."""
    from safetensors.torch import save_file

    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        raise InputError(f"safetensors files must end in .safetensors, not {p.name!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(p), metadata=metadata)


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (empty for other or unreadable files;
    :func:`load_state_dict` reports those when the weights are loaded)."""
    p = Path(path)
    if p.suffix.lower() != ".safetensors" or not p.is_file():
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception:
        return {}


def check_writable(path: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: a file where a folder
    above it should be, or a place where nothing can be created (a read-only folder or
    mount, ``/proc``): a probe file is created and removed in the nearest existing folder
    (folders that do not exist yet are fine; nothing else is left behind).

    Args:
        path: the output file (or, with ``folder``, the output folder).
        folder: ``path`` is a folder the output is written into.

    Raises:
        InputError: the path cannot be written (one line naming it and why).
    """
    import tempfile

    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise InputError(f"cannot write into {p}: it is a file, not a folder")
    if p.exists() and not folder and (not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222):
        raise InputError(f"cannot write {p}: the file is read-only")  # mode bits, even for root
    base = p if folder and p.is_dir() else next((q for q in p.parents if q.exists()), Path("."))
    if not base.is_dir():
        raise InputError(f"cannot write {p}: {base} is a file, not a folder")
    if not base.stat().st_mode & 0o222 or os.statvfs(base).f_flag & os.ST_RDONLY:
        raise InputError(f"cannot write {p}: {base} is read-only")  # even for root
    try:
        fd, probe = tempfile.mkstemp(prefix=".advsr-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {base} is not writable ({brief(exc)})") from None
    return p


def check_output_path(path: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """Refuse an output path before any work is done: a folder, a file where a folder above
    it should be, the wrong suffix, or a place nothing can be written (see
    :func:`check_writable`; folders that do not exist yet are fine).

    Raises:
        InputError: the path cannot be written.
    """
    p = Path(path)
    if suffix is not None and p.suffix != suffix:
        raise InputError(f"the output must end in {suffix}, got {p.name!r}")
    if p.is_dir():
        raise InputError(f"the output {p} is a folder")
    return check_writable(p)  # a file above it, a read-only place
