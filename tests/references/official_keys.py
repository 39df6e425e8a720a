"""Independent reference of the official ``state_dict`` key names and tensor shapes.

Every function returns an ordered ``dict[str, tuple[int, ...]]`` (state_dict key -> tensor
shape) built by hand from reading the official model definitions listed below. No torch model
code is used or copied; shapes follow the PyTorch conventions ``Conv2d.weight`` =
``(out, in // groups, k, k)`` and ``Conv2d.bias`` = ``(out,)``.

None of these architectures contains BatchNorm or any other module with buffers, so every key is
an ``nn.Parameter`` (no ``running_mean``/``num_batches_tracked``). Parameter-free modules
(ReLU, LeakyReLU, Sigmoid, PixelShuffle, nn.Upsample, AdaptiveAvgPool2d) still occupy a slot in
an ``nn.Sequential`` and therefore leave gaps in the numeric indices (e.g. ``body.0``/``body.2``).

Sources read (repository, path, stored commit as reported by the code index)
-----------------------------------------------------------------------------
``edsr_keys`` -- sanghyun-son/EDSR-PyTorch
    ``src/model/edsr.py`` @ 3dd71ae5561c42e9ce6c03273ee5d93be88db06e and
    ``src/model/common.py`` @ 4f5e2ced93ebb21b42c8568b044c143a4be4a651 (another stored
    version, 1abac010..., has the same module structure).
    * ``MeanShift`` subclasses ``nn.Conv2d(3, 3, kernel_size=1)``; so ``sub_mean.weight``
      (3, 3, 1, 1), ``sub_mean.bias`` (3,), ``add_mean.weight``, ``add_mean.bias`` are
      *parameters* (frozen: one common.py version sets ``p.requires_grad = False`` on each
      parameter, the older one only sets ``self.requires_grad = False`` on the module, which does
      not touch the parameters). They are in the state_dict and in ``model.parameters()``, and
      they are counted in ``PUBLISHED_PARAMS`` (24 numbers in all: 2 x (9 + 3)). Third-party
      code that dumps the released EDSR ``.pt`` files reads ``sub_mean.weight`` from them, so the
      released files do carry these four keys.
    * ``head.0`` conv; ``body.i.body.0`` / ``body.i.body.2`` (ResBlock: conv, ReLU, conv;
      ``res_scale`` is a plain float, not stored); ``body.{n_resblocks}`` is the trailing conv.
    * ``tail.0`` is the ``Upsampler`` Sequential: for scale 2^n, n x [conv(n_feats ->
      4 n_feats), PixelShuffle(2)] -> convs at ``tail.0.0``, ``tail.0.2`` (x4); for scale 3 one
      conv(n_feats -> 9 n_feats) at ``tail.0.0`` followed by PixelShuffle(3). ``tail.1`` is the
      final conv to 3 channels.
``rcan_keys`` -- yulunzhang/RCAN
    ``RCAN_TrainCode/code/model/rcan.py`` is not in the index; read
    ``RCAN_TestCode/code/model/rcan.py`` @ a57c5ed293b5ad9b64c1895d645f62d9a334fa11 and
    ``RCAN_TrainCode/code/model/common.py`` @ a57c5ed2... (also cross-checked against the port
    in sanghyun-son/EDSR-PyTorch ``src/model/rcan.py`` @ ab6b0ad7..., same structure).
    * MeanShift is the same Conv2d subclass as EDSR (``sub_mean.*``, ``add_mean.*`` are
      parameters, counted). Note: some third-party RCAN loaders treat ``sub_mean.weight`` as
      optional, i.e. some non-official RCAN checkpoints lack it.
    * ``body.g.body.b.body.0`` / ``.2`` convs, ``body.g.body.b.body.3.conv_du.0`` (reduce,
      1x1) and ``.conv_du.2`` (expand, 1x1) -- CALayer is slot 3 of the RCAB Sequential;
      ``body.g.body.{n_resblocks}`` is the group's trailing conv; ``body.{n_resgroups}`` is the
      body's trailing conv. Tail is the same Upsampler as EDSR.
``rrdb_keys_new`` -- xinntao/ESRGAN ``RRDBNet_arch.py`` @ d274b11e25f93cb8fc81b65fe40115e52c08d51b
    * ``conv_first``, ``RRDB_trunk.i.RDB{1,2,3}.conv{1..5}``, ``trunk_conv``, ``upconv1``,
      ``upconv2`` (nf -> nf, nearest interpolation before each, no PixelShuffle), ``HRconv``,
      ``conv_last``. conv_k in-channels = nf + (k-1) gc, conv5 outputs nf.
``rrdb_keys_old`` -- xinntao/ESRGAN ``architecture.py`` + ``block.py``
    @ 140595ab58617aa6c7a2c764fca4cba1e6fb8f79 and the conversion script
    ``transer_RRDB_models.py`` @ 7f37803677e2b145621027c5258dc9076ab0befa.
    * ``B.sequential`` drops ``None`` entries and flattens one level of ``nn.Sequential``;
      ``conv_block`` returns ``sequential(pad, conv, norm, act)`` which is a Sequential even when
      only the conv survives. Resulting top level ``model``:
      0 fea conv | 1 ShortcutBlock(.sub = [23 RRDBs, LR conv]) | 2 Upsample | 3 conv |
      4 LReLU | 5 Upsample | 6 conv | 7 LReLU | 8 HR conv0 | 9 LReLU | 10 HR conv1.
    * Inside each RDB every conv is wrapped in its own Sequential (conv[, LReLU]), hence
      ``model.1.sub.N.RDB1.conv1.0.weight`` (``.0`` also for conv5, which has no activation).
      The LR conv is flattened into ``model.1.sub`` at index nb (``model.1.sub.23.weight``).
    * This derivation agrees with the key mapping hard-coded in ``transer_RRDB_models.py``
      (model.0 -> conv_first, model.1.sub.23 -> trunk_conv, model.3 -> upconv1, model.6 ->
      upconv2, model.8 -> HRconv, model.10 -> conv_last, ``.weight`` -> ``.0.weight`` inside
      RDBs). Only the x4 upconv layout is produced here (for x3 the old net has a single
      upsampler, shifting HR convs to model.5/model.7).
``carn_keys`` / ``carn_m_keys`` -- nmhkahn/CARN-pytorch ``carn/model/carn.py``
    @ 1fb92291518e01d9967daa721d0c74671d039dbb, ``carn/model/carn_m.py`` and
    ``carn/model/ops.py`` @ a1d62d08a90cc341ea7581fec3302ebb926df7b4.
    * CARN's ``MeanShift`` is *not* a Conv2d subclass: it wraps one, so keys are
      ``sub_mean.shifter.weight`` / ``.bias`` and ``add_mean.shifter.*`` (parameters with
      requires_grad False; present in the released ``carn_m.pth``; counted).
    * ``_UpsampleBlock.body`` at a1d62d08 is [conv(64 -> 4*64, groups=g), ReLU, PixelShuffle(2)]
      per x2 step, so convs sit at ``body.0`` and ``body.3`` (x4); x3 is one conv(64 -> 9*64) at
      ``body.0``. With group g the weight is (4*64, 64 // g, 3, 3).
      CAUTION: the index also stores ops.py/carn_m.py @ 05858bc9... where the upsampler is
      [nn.Upsample, conv(64 -> 64), act] (keys ``body.1``/``body.4``). That variant does NOT
      match the released ``carn_m.pth``; the a1d62d08 layout does (verified).
    * CARN Block: ``b1``/``b2``/``b3`` ResidualBlocks (``body.0``, ``body.2`` 3x3 convs),
      ``c1``/``c2``/``c3`` 1x1 BasicBlocks (``body.0``). ``carn.py`` Block ignores ``group``.
    * CARN-M Block: a *single* EResidualBlock ``b1`` (reused three times in forward) with
      ``body.0``, ``body.2`` grouped 3x3 convs (group=4) and ``body.4`` a 1x1 conv; plus
      ``c1``..``c3``. multi_scale=True creates ``upsample.up2``, ``up3``, ``up4``.
``imdn_keys`` -- Zheng222/IMDN ``model/architecture.py`` @ 53f1dac25e8cd8e11ad65484eadf0d1e31d602fa
    and ``model/block.py`` @ 7c51070cdbf93157c8b03f6728165820f2ebf972 (IMDModule identical in
    the 0db43e15... version).
    * ``fea_conv`` is a bare conv; ``IMDB{k}.c1..c5`` and ``IMDB{k}.cca.conv_du.0`` /
      ``.conv_du.2`` (reduction 16 on distilled*4 channels); ``c.0`` (``conv_block`` with lrelu
      -> Sequential(conv, act)); ``LR_conv`` bare conv; ``upsampler.0`` (conv to 3*scale^2,
      followed by PixelShuffle at ``upsampler.1``). distilled = int(nf * 0.25), remaining =
      nf - distilled.
    * The official class hard-codes IMDB1..IMDB6 while ``c`` takes nf * num_modules inputs, so
      it is only self-consistent for num_modules == 6; this generator emits IMDB1..IMDB{n}.
    * Released checkpoints (``IMDN_x{2,3,4}.pth``) were saved from ``nn.DataParallel``: every
      key carries a ``module.`` prefix. This function returns keys *without* it.
``msrresnet_keys`` -- XPixelGroup/BasicSR ``basicsr/archs/srresnet_arch.py``
    @ 323cc143d4813648c9c1b21008d545f2be4bf811 and ``basicsr/archs/arch_util.py``
    (ResidualBlockNoBN: ``conv1``, ``conv2``).
    * x4: ``upconv1`` and ``upconv2`` both (4 nf, nf, 3, 3), one shared PixelShuffle(2)
      (no params); x2/x3: only ``upconv1`` with nf * s * s outputs. Then ``conv_hr``,
      ``conv_last``. (Older mmsr/BasicSR releases named these ``recon_trunk``/``HRconv``.)
      BasicSR checkpoints wrap the state_dict under ``"params"`` (and/or ``"params_ema"``).

``PUBLISHED_PARAMS`` holds the totals obtained by summing the shapes returned here (MeanShift
parameters included where the model has them; ``MEANSHIFT_PARAMS`` gives the part they
contribute, so ``PUBLISHED_PARAMS[k] - MEANSHIFT_PARAMS[k]`` is the count without them).
"""

from __future__ import annotations

Shapes = dict[str, tuple[int, ...]]


def _conv(d: Shapes, prefix: str, cin: int, cout: int, k: int, groups: int = 1, bias: bool = True):
    d[f"{prefix}.weight"] = (cout, cin // groups, k, k)
    if bias:
        d[f"{prefix}.bias"] = (cout,)


def _mean_shift(d: Shapes, prefix: str) -> None:
    # 1x1 conv 3 -> 3 holding the RGB mean as its bias.
    _conv(d, prefix, 3, 3, 1)


def _edsr_style_upsampler(d: Shapes, prefix: str, n_feats: int, scale: int) -> None:
    """EDSR/RCAN ``common.Upsampler``: conv then PixelShuffle, repeated per x2 step."""
    if scale & (scale - 1) == 0:
        steps = scale.bit_length() - 1
        for s in range(steps):
            _conv(d, f"{prefix}.{2 * s}", n_feats, 4 * n_feats, 3)
    elif scale == 3:
        _conv(d, f"{prefix}.0", n_feats, 9 * n_feats, 3)
    else:
        raise ValueError(f"unsupported scale {scale}")


def edsr_keys(n_resblocks: int, n_feats: int, scale: int, n_colors: int = 3) -> Shapes:
    d: Shapes = {}
    _mean_shift(d, "sub_mean")
    _mean_shift(d, "add_mean")
    _conv(d, "head.0", n_colors, n_feats, 3)
    for i in range(n_resblocks):
        _conv(d, f"body.{i}.body.0", n_feats, n_feats, 3)
        _conv(d, f"body.{i}.body.2", n_feats, n_feats, 3)
    _conv(d, f"body.{n_resblocks}", n_feats, n_feats, 3)
    _edsr_style_upsampler(d, "tail.0", n_feats, scale)
    _conv(d, "tail.1", n_feats, n_colors, 3)
    return d


def rcan_keys(
    n_resgroups: int, n_resblocks: int, n_feats: int, reduction: int, scale: int, n_colors: int = 3
) -> Shapes:
    d: Shapes = {}
    _mean_shift(d, "sub_mean")
    _mean_shift(d, "add_mean")
    _conv(d, "head.0", n_colors, n_feats, 3)
    squeezed = n_feats // reduction
    for g in range(n_resgroups):
        for b in range(n_resblocks):
            p = f"body.{g}.body.{b}.body"
            _conv(d, f"{p}.0", n_feats, n_feats, 3)
            _conv(d, f"{p}.2", n_feats, n_feats, 3)
            _conv(d, f"{p}.3.conv_du.0", n_feats, squeezed, 1)
            _conv(d, f"{p}.3.conv_du.2", squeezed, n_feats, 1)
        _conv(d, f"body.{g}.body.{n_resblocks}", n_feats, n_feats, 3)
    _conv(d, f"body.{n_resgroups}", n_feats, n_feats, 3)
    _edsr_style_upsampler(d, "tail.0", n_feats, scale)
    _conv(d, "tail.1", n_feats, n_colors, 3)
    return d


def _rdb_convs(nf: int, gc: int):
    """(name, in, out) for the five convs of a ResidualDenseBlock_5C."""
    return [(f"conv{k}", nf + (k - 1) * gc, gc if k < 5 else nf) for k in range(1, 6)]


def rrdb_keys_new(
    nf: int = 64, nb: int = 23, gc: int = 32, in_nc: int = 3, out_nc: int = 3
) -> Shapes:
    d: Shapes = {}
    _conv(d, "conv_first", in_nc, nf, 3)
    for i in range(nb):
        for r in (1, 2, 3):
            for name, cin, cout in _rdb_convs(nf, gc):
                _conv(d, f"RRDB_trunk.{i}.RDB{r}.{name}", cin, cout, 3)
    _conv(d, "trunk_conv", nf, nf, 3)
    _conv(d, "upconv1", nf, nf, 3)
    _conv(d, "upconv2", nf, nf, 3)
    _conv(d, "HRconv", nf, nf, 3)
    _conv(d, "conv_last", nf, out_nc, 3)
    return d


def rrdb_keys_old(
    nf: int = 64, nb: int = 23, gc: int = 32, in_nc: int = 3, out_nc: int = 3
) -> Shapes:
    """Old ESRGAN ``RRDB_Net`` (B.sequential-flattened ``model.*``) layout, x4 upconv mode."""
    d: Shapes = {}
    _conv(d, "model.0", in_nc, nf, 3)
    for i in range(nb):
        for r in (1, 2, 3):
            for name, cin, cout in _rdb_convs(nf, gc):
                _conv(d, f"model.1.sub.{i}.RDB{r}.{name}.0", cin, cout, 3)
    _conv(d, f"model.1.sub.{nb}", nf, nf, 3)
    # 2: Upsample, 3: conv, 4: LReLU, 5: Upsample, 6: conv, 7: LReLU, 8: conv, 9: LReLU, 10: conv
    _conv(d, "model.3", nf, nf, 3)
    _conv(d, "model.6", nf, nf, 3)
    _conv(d, "model.8", nf, nf, 3)
    _conv(d, "model.10", nf, out_nc, 3)
    return d


def _carn_upsample(d: Shapes, prefix: str, n: int, scale: int, group: int) -> None:
    """CARN ``_UpsampleBlock.body``: [conv(n -> r^2 n), ReLU, PixelShuffle(r)] per step."""
    if scale in (2, 4, 8):
        for s in range(scale.bit_length() - 1):
            _conv(d, f"{prefix}.body.{3 * s}", n, 4 * n, 3, groups=group)
    elif scale == 3:
        _conv(d, f"{prefix}.body.0", n, 9 * n, 3, groups=group)
    else:
        raise ValueError(f"unsupported scale {scale}")


def _carn_common(d: Shapes, block_fn, group: int) -> Shapes:
    n = 64
    d["sub_mean.shifter.weight"] = (3, 3, 1, 1)
    d["sub_mean.shifter.bias"] = (3,)
    d["add_mean.shifter.weight"] = (3, 3, 1, 1)
    d["add_mean.shifter.bias"] = (3,)
    _conv(d, "entry", 3, n, 3)
    for b in (1, 2, 3):
        block_fn(d, f"b{b}")
    for c in (1, 2, 3):
        _conv(d, f"c{c}.body.0", n * (c + 1), n, 1)
    for s in (2, 3, 4):
        _carn_upsample(d, f"upsample.up{s}", n, s, group)
    _conv(d, "exit", n, 3, 3)
    return d


def carn_keys() -> Shapes:
    """CARN, multi_scale=True, group=1."""
    n = 64

    def block(d: Shapes, p: str) -> None:
        for r in (1, 2, 3):
            _conv(d, f"{p}.b{r}.body.0", n, n, 3)
            _conv(d, f"{p}.b{r}.body.2", n, n, 3)
        for c in (1, 2, 3):
            _conv(d, f"{p}.c{c}.body.0", n * (c + 1), n, 1)

    return _carn_common({}, block, group=1)


def carn_m_keys(group: int = 4) -> Shapes:
    """CARN-M, multi_scale=True, group=4 (one shared EResidualBlock per Block)."""
    n = 64

    def block(d: Shapes, p: str) -> None:
        _conv(d, f"{p}.b1.body.0", n, n, 3, groups=group)
        _conv(d, f"{p}.b1.body.2", n, n, 3, groups=group)
        _conv(d, f"{p}.b1.body.4", n, n, 1)
        for c in (1, 2, 3):
            _conv(d, f"{p}.c{c}.body.0", n * (c + 1), n, 1)

    return _carn_common({}, block, group=group)


def imdn_keys(
    nf: int = 64, num_modules: int = 6, scale: int = 4, in_nc: int = 3, out_nc: int = 3
) -> Shapes:
    """IMDN keys without the ``module.`` prefix of the released checkpoints."""
    d: Shapes = {}
    distilled = int(nf * 0.25)
    remaining = nf - distilled
    cca = distilled * 4
    _conv(d, "fea_conv", in_nc, nf, 3)
    for k in range(1, num_modules + 1):
        p = f"IMDB{k}"
        _conv(d, f"{p}.c1", nf, nf, 3)
        _conv(d, f"{p}.c2", remaining, nf, 3)
        _conv(d, f"{p}.c3", remaining, nf, 3)
        _conv(d, f"{p}.c4", remaining, distilled, 3)
        _conv(d, f"{p}.c5", nf, nf, 1)
        _conv(d, f"{p}.cca.conv_du.0", cca, cca // 16, 1)
        _conv(d, f"{p}.cca.conv_du.2", cca // 16, cca, 1)
    _conv(d, "c.0", nf * num_modules, nf, 1)
    _conv(d, "LR_conv", nf, nf, 3)
    _conv(d, "upsampler.0", nf, out_nc * scale * scale, 3)
    return d


def msrresnet_keys(
    num_feat: int = 64, num_block: int = 16, scale: int = 4, in_ch: int = 3, out_ch: int = 3
) -> Shapes:
    d: Shapes = {}
    _conv(d, "conv_first", in_ch, num_feat, 3)
    for i in range(num_block):
        _conv(d, f"body.{i}.conv1", num_feat, num_feat, 3)
        _conv(d, f"body.{i}.conv2", num_feat, num_feat, 3)
    if scale == 4:
        _conv(d, "upconv1", num_feat, 4 * num_feat, 3)
        _conv(d, "upconv2", num_feat, 4 * num_feat, 3)
    elif scale in (2, 3):
        _conv(d, "upconv1", num_feat, num_feat * scale * scale, 3)
    else:
        raise ValueError(f"unsupported scale {scale}")
    _conv(d, "conv_hr", num_feat, num_feat, 3)
    _conv(d, "conv_last", num_feat, out_ch, 3)
    return d


def count_params(shapes: Shapes) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


# Totals from summing the shapes above (computed and checked with count_params; see report).
PUBLISHED_PARAMS: dict[str, int] = {
    "edsr_x4": 43_089_947,  # edsr_keys(32, 256, 4); paper: 43M
    "edsr_baseline_x4": 1_517_595,  # edsr_keys(16, 64, 4); paper: 1.5M
    "rcan_x4": 15_592_379,  # rcan_keys(10, 20, 64, 16, 4); paper: ~16M
    "rrdb_x4": 16_697_987,  # rrdb_keys_new(64, 23, 32) == rrdb_keys_old(64, 23, 32)
    "carn_multiscale": 1_591_963,  # carn_keys(); paper: 1,592K
    "carn_m_multiscale": 414_811,  # carn_m_keys(); == released carn_m.pth
    "imdn_x4": 715_176,  # imdn_keys(64, 6, 4); == released IMDN_x4.pth
    "msrresnet_x4": 1_517_571,  # msrresnet_keys(64, 16, 4)
}

# Share of the totals above that comes from the frozen MeanShift 1x1 convs (2 x (9 + 3)).
MEANSHIFT_PARAMS: dict[str, int] = {
    "edsr_x4": 24,
    "edsr_baseline_x4": 24,
    "rcan_x4": 24,
    "rrdb_x4": 0,
    "carn_multiscale": 24,
    "carn_m_multiscale": 24,
    "imdn_x4": 0,
    "msrresnet_x4": 0,
}
