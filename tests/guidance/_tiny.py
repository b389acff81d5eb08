"""Tiny randomly initialised diffusers/transformers components, built in-process (no downloads)."""
from __future__ import annotations

import torch
from torch import nn

VOCAB = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"] + [f"w{i}" for i in range(60)] + [
    "a", "photo", "of", "tench", "goldfish", "shark", "digit", "zero", "one", "two", "three", "cat", "dog"]


def tiny_tokenizer(max_length: int = 8):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, pad_token="[PAD]",
                                   unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")


def tiny_clip_text_encoder(hidden: int = 16, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=len(VOCAB), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, projection_dim=hidden,
                         bos_token_id=2, eos_token_id=3, pad_token_id=0)
    return CLIPTextModel(cfg).eval()


def tiny_vae(seed: int = 0, latent_channels: int = 4):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 8),
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4, sample_size=16).eval()


def tiny_unet(cross_dim: int = 16, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross_dim,
                                attention_head_dim=2, norm_num_groups=4).eval()


def tiny_scheduler(kind: str = "ddim", prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

    kw = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
              prediction_type=prediction_type, steps_offset=1)
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **kw)
    if kind == "ddpm":
        return DDPMScheduler(clip_sample=False, **kw)
    if kind == "euler":
        return EulerDiscreteScheduler(**kw)
    raise ValueError(kind)


class TinyClassifier(nn.Module):
    """Conv + pool + linear; exposes forward_with_features for the hardness criterion."""

    def __init__(self, n_classes: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, n_classes)

    def forward_with_features(self, x):
        f = self.body(x)
        return self.head(f), f

    def forward(self, x):
        return self.forward_with_features(x)[0]


def sd_components(prediction_type: str = "epsilon", scheduler: str = "ddim"):
    return dict(vae=tiny_vae(), text_encoder=tiny_clip_text_encoder(), tokenizer=tiny_tokenizer(), unet=tiny_unet(),
                scheduler=tiny_scheduler(scheduler, prediction_type))


# ----------------------------------------------------------------------------- FLUX family
def tiny_t5_encoder(d_model: int = 16, seed: int = 1):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(VOCAB), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=2,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0,
                   eos_token_id=3, decoder_start_token_id=0)
    return T5EncoderModel(cfg).eval()


def tiny_flux_vae(seed: int = 0):
    """FLUX-style AutoencoderKL: 1 latent channel (the transformer packs 2x2 patches -> 4), no quant convs."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 8),
                         layers_per_block=1, latent_channels=1, norm_num_groups=4, sample_size=16,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                         scaling_factor=1.5035).eval()


def tiny_flux_transformer(seed: int = 0, guidance_embeds: bool = True):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                  num_attention_heads=2, joint_attention_dim=16, pooled_projection_dim=16,
                                  axes_dims_rope=(4, 4, 8), guidance_embeds=guidance_embeds).eval()


def tiny_flow_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096)


def flux_components(guidance_embeds: bool = True):
    return dict(scheduler=tiny_flow_scheduler(), vae=tiny_flux_vae(), text_encoder=tiny_clip_text_encoder(),
                tokenizer=tiny_tokenizer(), text_encoder_2=tiny_t5_encoder(), tokenizer_2=tiny_tokenizer(),
                transformer=tiny_flux_transformer(guidance_embeds=guidance_embeds))
