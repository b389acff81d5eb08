"""The feedback-guidance step (spec §2 step 2, §9 graph G2) as one module.

:class:`FeedbackGuidanceStep` holds only frozen modules and Python constants fixed at
construction (mode, classifier normalisation); every per-step quantity - the latents, the
timestep, the noise coefficients, the text conditioning, the target classes, the scales
and the criterion index - is a tensor ARGUMENT. Nothing in Python changes from one call to
the next, so the same object runs eagerly or under ``torch.compile`` (see
:func:`compile_step`) and gives the same values.

Notation (spec §2): z = z_t (B, ...) latents; a = sqrt(alpha_bar_t); s = sqrt(1 - alpha_bar_t)
(the marginal noise std; sigma_t for flow matching); w = fg_scale (B,).

1. x0_hat = denoiser(z, ...)                       (SD: (z - s eps)/a, FLUX: z - sigma v)
2. z_tilde = s * x0_hat + (1 - s) * z              (the CLIP-guidance blend, §2 d)
3. x = decoder(z_tilde) in [-1, 1]; u = x/2 + 1/2; per-sample u <- (u - sg min)/sg max (§2 e)
4. logits = classifier((u - mean)/std)             (§2 f)
5. C = criterion per sample (B,); g = dC/dz, exact through classifier, VAE and denoiser (§2 h)
6. ``latent_shift_normalized``: delta_b = w_b ||z_b|| g_b / (||g_b|| + 1e-8)   (§2 i, §9 7)
   ``eps_shift``:               delta_b = -w_b s g_b  (to add to the eps prediction)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._typing import ArrayLike
from .._validation import positive_int
from .criteria import Criterion, check_float_tensor, check_labels, evaluate_criteria, needs_features

GUIDANCE_MODES: tuple[str, ...] = ("latent_shift_normalized", "eps_shift")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classify(classifier: nn.Module, x: torch.Tensor, want_features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits (B,K), features (B,D) or None). Uses ``forward_with_features`` when present."""
    if hasattr(classifier, "forward_with_features"):
        logits, feats = classifier.forward_with_features(x)
        return logits, feats
    if want_features:
        raise ValueError("a criterion needs classifier features but the classifier has no "
                         "forward_with_features(); wrap it in FeatureClassifier(backbone, head)")
    return classifier(x), None


def at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """Upcast fp16/bf16 to float32 (float64 stays float64): norms and criteria in >= fp32 (spec §9)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def minmax_rescale(x: torch.Tensor) -> torch.Tensor:
    """Spec §2 e: u = x/2 + 1/2, then per-sample (u - sg(min)) / sg(max), min/max as constants.

    x: (B, C, H, W) decoder output. The max is floored at 1e-12 so a constant image gives 0,
    not NaN (the only deviation from upstream, which divides unguarded).
    """
    u = x / 2 + 0.5
    dims = tuple(range(1, u.ndim))
    u = u - u.detach().amin(dim=dims, keepdim=True)
    return u / u.detach().amax(dim=dims, keepdim=True).clamp_min(1e-12)


class FeedbackGuidanceStep(nn.Module):
    """Guided latent update G2 (spec §9) as a module with tensor-only per-step inputs.

    Parameters
    ----------
    denoiser : nn.Module
        ``denoiser(z, *cond) -> x0_hat`` with the same shape as z (see SDDenoiser / FluxDenoiser).
    decoder : nn.Module
        ``decoder(z_tilde) -> x`` (B, 3, H, W) in about [-1, 1].
    classifier : nn.Module
        Any torch classifier on [0,1]-images normalised by ``mean``/``std`` -> (B, K) logits.
    criteria : sequence of criterion callables (see :mod:`.criteria`); sample b uses
        ``criteria[crit_index[b]]``.
    mode : "latent_shift_normalized" (default, = upstream code) or "eps_shift".
    mean, std : per-channel classifier normalisation (ImageNet by default).
    classifier_size : resize the rescaled image to this square size before the classifier
        (None = upstream: the classifier sees the full decoded resolution).
    nonfinite_z : "raise" (default) refuses a z holding NaN/inf (ValueError naming z);
        "propagate" lets such rows through, giving NaN delta and C for those rows only, as a
        sampling loop needs so that a sample that overflowed (fp16) mid-loop is regenerated
        once and then reported corrupted (spec §2 post-loop, §9: samples never couple).
    """

    def __init__(self, denoiser: nn.Module, decoder: nn.Module, classifier: nn.Module,
                 criteria: Sequence[Criterion], *, mode: str = "latent_shift_normalized",
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 classifier_size: int | None = None, nonfinite_z: str = "raise") -> None:
        super().__init__()
        if nonfinite_z not in ("raise", "propagate"):
            raise ValueError(f"nonfinite_z must be 'raise' or 'propagate', got {nonfinite_z!r}")
        self.nonfinite_z = nonfinite_z
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"unknown guidance mode {mode!r}: expected one of {GUIDANCE_MODES}")
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.denoiser, self.decoder, self.classifier = denoiser, decoder, classifier
        self.criteria = list(criteria)
        self._criteria_modules = nn.ModuleList([c for c in self.criteria if isinstance(c, nn.Module)])
        self.want_features = any(needs_features(c) for c in self.criteria)
        self.mode = mode
        self.classifier_size = None if classifier_size is None else positive_int(classifier_size, "classifier_size")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def preprocess(self, u: torch.Tensor) -> torch.Tensor:
        """[0,1] images (B,3,H,W) -> classifier input (optional resize, then normalise)."""
        if self.classifier_size is not None and u.shape[-1] != self.classifier_size:
            u = torch.nn.functional.interpolate(u, size=(self.classifier_size, self.classifier_size),
                                                mode="bilinear", align_corners=False, antialias=False)
        return (at_least_f32(u) - self.mean.to(u.device)) / self.std.to(u.device)

    def criterion_on_images(self, images01: torch.Tensor, y: torch.Tensor, crit_index: torch.Tensor) -> torch.Tensor:
        """C (B,) on [0,1] images (used for the final, clamped image, spec §2 post-loop)."""
        logits, feats = classify(self.classifier, self.preprocess(images01).to(self._clf_dtype()), self.want_features)
        return evaluate_criteria(self.criteria, crit_index, at_least_f32(logits),
                                 y, None if feats is None else at_least_f32(feats))

    def rescale(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output -> [0,1] with stop-grad per-sample min/max (spec §2 e)."""
        return minmax_rescale(at_least_f32(x))

    def _clf_dtype(self) -> torch.dtype:
        for p in self.classifier.parameters():
            return p.dtype
        return torch.float32

    def check_inputs(self, z: torch.Tensor | ArrayLike, y: torch.Tensor | ArrayLike, w: torch.Tensor | ArrayLike,
                     crit_index: torch.Tensor | ArrayLike
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, y, w, crit_index) validated: z (B, ...) float, finite unless ``nonfinite_z='propagate'``,
        made contiguous; y (B,) int
        classes >= 0 (the upper bound is checked by the criterion against K); w (B,) finite
        float; crit_index (B,) int in [0, len(criteria)). Tensors keep their device and dtype."""
        z = check_float_tensor(z, "z", min_ndim=2, finite=self.nonfinite_z == "raise").contiguous()
        B = z.shape[0]
        y = check_labels(y, B, None, rows_of="z")
        w = check_float_tensor(w, "w", ndim=1)
        if w.shape[0] != B:
            raise ValueError(f"w has {w.shape[0]} entries but z has {B} rows (one guidance scale per sample)")
        crit_index = check_labels(crit_index, B, len(self.criteria), name="crit_index", rows_of="z")
        return z, y, w, crit_index

    def _objective(self, z: torch.Tensor, y: torch.Tensor, crit_index: torch.Tensor, noise_coef: torch.Tensor,
                   cond: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x0_hat = self.denoiser(z, *cond)                                   # §2 b-c
        z_tilde = noise_coef * x0_hat + (1 - noise_coef) * z               # §2 d
        x = self.decoder(z_tilde)                                          # §2 e
        u = self.rescale(x)
        logits, feats = classify(self.classifier, self.preprocess(u).to(self._clf_dtype()), self.want_features)
        C = evaluate_criteria(self.criteria, crit_index, at_least_f32(logits), y,
                              None if feats is None else at_least_f32(feats))  # §2 g
        return C.sum(), C

    def forward(self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, crit_index: torch.Tensor,
                noise_coef: torch.Tensor, *cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One guided update.

        z (B, ...) latents; y (B,) int64; w (B,) float32 scales; crit_index (B,) int64;
        noise_coef 0-d float32 tensor (sqrt(1 - alpha_bar_t) or sigma_t); ``cond``: the
        denoiser's remaining tensor arguments. Returns (delta, C): delta has z's shape and
        dtype (the latent increment, or the eps increment in ``eps_shift`` mode), C (B,)
        float32 is the criterion at the guided estimate.

        Eager calls validate first (:meth:`check_inputs`: ValueError/TypeError naming z, y, w or
        crit_index; numpy input is accepted and any layout is made C-contiguous, so a Fortran,
        strided or reversed z gives exactly the contiguous answer). Under ``torch.compile`` the
        checks are skipped (no graph break, no host sync); validate once before compiling.
        """
        if not torch.compiler.is_compiling():
            z, y, w, crit_index = self.check_inputs(z, y, w, crit_index)
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            total, C = self._objective(zg, y, crit_index, noise_coef, cond)
            (g,) = torch.autograd.grad(total, zg)                         # §2 h
        g = at_least_f32(g)
        bshape = (z.shape[0],) + (1,) * (z.ndim - 1)
        if self.mode == "latent_shift_normalized":                         # §2 i, per sample (§9)
            z_norm = at_least_f32(z.detach()).flatten(1).norm(dim=1)
            g_norm = g.flatten(1).norm(dim=1)
            delta = (w.to(g.dtype) * z_norm / (g_norm + 1e-8)).view(bshape) * g
        else:                                                              # eps_shift
            delta = -(w.to(g.dtype).view(bshape) * noise_coef.to(g.dtype)) * g
        return delta.to(z.dtype), C.detach()


#: Inductor options for the step. ``reorder_for_peak_memory`` is off because that pass (torch
#: 2.13, CPU) moved the scatter of nearest-upsample's backward (``_unsafe_index_put`` into a zero
#: buffer) after the kernel that reads it, so gradients through the VAE decoder's up-blocks came
#: out as exact zeros: the compiled step silently lost all guidance.
INDUCTOR_OPTIONS: dict = {"reorder_for_peak_memory": False}


def compile_step(step: FeedbackGuidanceStep, *, backend: str = "inductor", fullgraph: bool = False,
                 mode: str | None = None) -> nn.Module:
    """``torch.compile`` the step. On CUDA pass ``mode="reduce-overhead"`` for CUDA graphs.

    ``fullgraph=False`` by default: ``torch.autograd.grad`` inside the step is a graph break
    under Dynamo, so the forward+backward is compiled as the surrounding subgraphs.
    With ``backend="inductor"`` the :data:`INDUCTOR_OPTIONS` patches apply to this compile only
    (``mode`` is expanded into its options, since torch.compile takes one or the other).
    """
    if backend != "inductor":
        return torch.compile(step, backend=backend, fullgraph=fullgraph, mode=mode, dynamic=False)
    from torch._inductor import list_mode_options

    options = dict(list_mode_options(mode)) if mode else {}
    options.update(INDUCTOR_OPTIONS)
    return torch.compile(step, backend=backend, fullgraph=fullgraph, options=options, dynamic=False)
