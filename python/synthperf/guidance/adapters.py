"""Family adapters: x0_hat and decode for SD (UNet) and FLUX (flow transformer); classifiers.

Each denoiser maps (z, *cond tensors) -> x0_hat (spec §2 c); each decoder maps the blended
latent z_tilde -> image in about [-1, 1] (spec §2 e). They are thin nn.Modules so that
:class:`~synthperf.guidance.step.FeedbackGuidanceStep` only ever sees tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

SD_PREDICTION_TYPES = ("epsilon", "v_prediction")


class SDDenoiser(nn.Module):
    """x0_hat from a UNet2DConditionModel, text-conditional branch only, unscaled input (spec §2 b-c).

    forward(z (B,C,h,w), t 0-d, sqrt_ab 0-d, sqrt_1mab 0-d, emb (B,L,d)) -> x0_hat (B,C,h,w)
    epsilon:      x0 = (z - sqrt(1-ab) eps) / sqrt(ab)
    v_prediction: x0 = sqrt(ab) z - sqrt(1-ab) v
    """

    def __init__(self, unet: nn.Module, prediction_type: str) -> None:
        super().__init__()
        if prediction_type not in SD_PREDICTION_TYPES:
            raise ValueError(f"prediction_type {prediction_type!r} is not supported for SD guidance: "
                             f"expected one of {SD_PREDICTION_TYPES}")
        self.unet, self.prediction_type = unet, prediction_type

    def forward(self, z, t, sqrt_ab, sqrt_1mab, emb):
        out = self.unet(z, t, encoder_hidden_states=emb, return_dict=False)[0]
        if self.prediction_type == "epsilon":
            return (z - sqrt_1mab * out) / sqrt_ab
        return sqrt_ab * z - sqrt_1mab * out


class SDDecoder(nn.Module):
    """x = D(z_tilde / s_vae) with AutoencoderKL (spec §2 e)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

    def forward(self, z):
        return self.vae.decode(z / self.scaling_factor + self.shift_factor, return_dict=False)[0]


class PixelDenoiser(nn.Module):
    """x0_hat from a class-conditional pixel-space UNet2DModel (conditional branch, unscaled input).

    forward(z (B,C,H,W) pixels in about [-1,1], t 0-d, sqrt_ab 0-d, sqrt_1mab 0-d, labels (B,) int64)
    -> x0_hat (B,C,H,W); epsilon / v_prediction as :class:`SDDenoiser`, ``sample`` returns the output.
    """

    def __init__(self, unet: nn.Module, prediction_type: str) -> None:
        super().__init__()
        if prediction_type not in SD_PREDICTION_TYPES + ("sample",):
            raise ValueError(f"prediction_type {prediction_type!r} is not supported for pixel guidance: "
                             f"expected one of {SD_PREDICTION_TYPES + ('sample',)}")
        self.unet, self.prediction_type = unet, prediction_type

    def forward(self, z, t, sqrt_ab, sqrt_1mab, labels):
        out = self.unet(z, t, class_labels=labels, return_dict=False)[0]
        if self.prediction_type == "epsilon":
            return (z - sqrt_1mab * out) / sqrt_ab
        if self.prediction_type == "v_prediction":
            return sqrt_ab * z - sqrt_1mab * out
        return out


class PixelDecoder(nn.Module):
    """Pixel space has no VAE: the "decoded" image is z itself, grey (1 channel) replicated to 3."""

    def forward(self, z):
        return z.expand(-1, 3, -1, -1) if z.shape[1] == 1 else z


def unpack_flux_latents(latents: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, (h/2)(w/2), 4C) packed FLUX latents -> (B, C, h, w) (h, w in latent pixels)."""
    B, _, ch = latents.shape
    x = latents.view(B, h // 2, w // 2, ch // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(B, ch // 4, h, w)


class FluxDenoiser(nn.Module):
    """x0_hat = z - sigma_t v from a FluxTransformer2DModel (spec: FLUX family).

    forward(z (B,N,c) packed, timestep 0-d (=sigma, as FluxPipeline passes t/1000), sigma 0-d,
    prompt_embeds (B,L,d), pooled (B,p), txt_ids (L,3), img_ids (N,3), guidance (B,) or empty)
    """

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, z, timestep, sigma, prompt_embeds, pooled, txt_ids, img_ids, guidance):
        v = self.transformer(hidden_states=z, timestep=timestep.expand(z.shape[0]).to(z.dtype),
                             guidance=guidance if guidance.numel() else None, pooled_projections=pooled,
                             encoder_hidden_states=prompt_embeds, txt_ids=txt_ids, img_ids=img_ids,
                             return_dict=False)[0]
        return z - sigma * v


class FluxDecoder(nn.Module):
    """Unpack, then x = D(z / s_vae + shift) as FluxPipeline does."""

    def __init__(self, vae: nn.Module, latent_h: int, latent_w: int) -> None:
        super().__init__()
        self.vae, self.h, self.w = vae, latent_h, latent_w
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

    def forward(self, z):
        x = unpack_flux_latents(z, self.h, self.w)
        return self.vae.decode(x / self.scaling_factor + self.shift_factor, return_dict=False)[0]


class FeatureClassifier(nn.Module):
    """classifier = head(backbone(x)); exposes features for the hardness criterion.

    backbone: (B,3,H,W) -> (B,D) (flattened); head: (B,D) -> (B,K).
    For torchvision ResNets: ``FeatureClassifier(nn.Sequential(*list(m.children())[:-1], nn.Flatten()), m.fc)``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, K), features (B, D)) for images x (B, 3, H, W)."""
        f = self.backbone(x)
        if f.ndim != 2:
            f = f.flatten(1)
        return self.head(f), f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = nn.GroupNorm(min(4, cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.GroupNorm(min(4, cout), cout)
        self.skip = nn.Identity() if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        h = torch.relu(self.n1(self.c1(x)))
        return torch.relu(self.n2(self.c2(h)) + self.skip(x))


class SmallResNet(nn.Module):
    """A small ResNet (3 stages, GroupNorm, global average pool) for the embedded digits default.

    Input (B, 3, H, W) normalised images (any H, W >= 8); output (B, n_classes) logits;
    ``forward_with_features`` also returns the (B, 4*width) pooled features (hardness).
    """

    def __init__(self, n_classes: int = 10, *, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.GroupNorm(4, width), nn.ReLU())
        self.stages = nn.Sequential(_Block(width, width, 1), _Block(width, 2 * width, 2), _Block(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, n_classes)
        self.n_classes = n_classes

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, n_classes), pooled features (B, 4*width)) for images x (B, in_channels, H, W)."""
        f = self.stages(self.stem(x)).mean(dim=(2, 3))
        return self.head(f), f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


class KerasModel(Protocol):
    """A built ``keras.Model`` as :class:`synthperf.interop.keras.KerasClassifier` reads it
    (TensorFlow is not imported here): ``output_shape[-1]`` = K and ``predict(x (N, H, W, C)
    float32, batch_size=, verbose=) -> (N, K)``."""

    @property
    def output_shape(self) -> tuple[int | None, ...]: ...

    def predict(self, x: np.ndarray, *, batch_size: int, verbose: int) -> np.ndarray: ...


class KerasTorchClassifier(nn.Module):
    """A Keras/TensorFlow classifier as a torch module, for the FORWARD criterion only (``tf`` extra).

    forward(x (B, C, H, W) float, normalised as the Keras model expects) -> (B, K) float32
    logits on x's device. A model ending in softmax (``outputs="probabilities"``) gives
    log p, floored at -1e4 so that p_k = 0 contributes 0 (not NaN) to the entropy.

    Gradients through a TensorFlow graph into torch latents are not available, so
    ``supports_gradients = False``: the pipelines refuse fg_scale != 0 with this classifier
    (ValueError), and calling it on a tensor that requires grad raises TypeError. Use it to
    score generated images (the final criterion value, spec §2 post-loop), not to guide.
    Wraps :class:`synthperf.interop.keras.KerasClassifier` (which imports TensorFlow after
    Triton, see there); ``model`` is a built ``keras.Model`` or a ``.keras``/``.h5`` path.
    """

    supports_gradients = False

    def __init__(self, model: KerasModel | str | Path, *, outputs: str = "probabilities",
                 batch_size: int = 128) -> None:
        super().__init__()
        from ..interop.keras import KerasClassifier

        self._keras = KerasClassifier(model, outputs=outputs, batch_size=batch_size)
        self.num_classes = int(self._keras.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise TypeError("KerasTorchClassifier supports the forward criterion only: gradients through a "
                            "TensorFlow/Keras model into torch latents are not available. Use fg_scale=0 "
                            "(score images) or a torch nn.Module classifier for guidance.")
        return self._keras(x).clamp_min(-1e4).to(x.device)
