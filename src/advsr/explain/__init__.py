"""Explaining adversarial perturbations: SSIM maps, Grad-CAM/Grad-CAM++, overlap metrics.

The PGAP paper's analysis (``pgap_perceptual_ssim_attacks.txt``, sec. V): per-channel SSIM
maps between clean and adversarial images locate the perturbation (:mod:`.maps`), a
Grad-CAM++ map of the clean image locates what the classifier looks at (:mod:`.cam`), and
precision / recall / IoU / IoU-outside curves over noise thresholds measure their overlap
(:mod:`.overlap`).

Example:
    >>> import torch
    >>> from advsr.models.classifiers import create_classifier
    >>> clf = create_classifier("digits-cnn", bundled=False)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(2, 3, 32, 32, generator=g)
    >>> x_adv = (x + 0.05 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    >>> counts = overlap_curves(ssim_maps(x, x_adv), grad_cam_plus_plus(clf, x), [0.1, 0.2])
    >>> counts.means()["precision"].shape
    torch.Size([2])
"""

from advsr.explain.cam import (
    ClassActivationMap,
    cam_layers,
    class_activation_map,
    default_layer,
    get_layer,
    grad_cam,
    grad_cam_plus_plus,
    normalize_maps,
)
from advsr.explain.maps import (
    SSIMMaps,
    block_ssim_maps,
    gaussian_ssim_maps,
    ssim_maps,
)
from advsr.explain.overlap import (
    OverlapCounts,
    confusion_counts,
    distortion,
    noise_mask,
    overlap_curves,
    saliency_mask,
)

__all__ = [
    "ClassActivationMap",
    "OverlapCounts",
    "SSIMMaps",
    "block_ssim_maps",
    "cam_layers",
    "class_activation_map",
    "confusion_counts",
    "default_layer",
    "distortion",
    "gaussian_ssim_maps",
    "get_layer",
    "grad_cam",
    "grad_cam_plus_plus",
    "noise_mask",
    "normalize_maps",
    "overlap_curves",
    "saliency_mask",
    "ssim_maps",
]
