"""Feedback-guided sampling with a tiny randomly initialised class-conditional pixel UNet.

Everything is built in-process (no download): a 3-class diffusers ``UNet2DModel`` on 8x8
images, a DDIM scheduler and a small torch classifier. The same rows are sampled unguided
(``fg_scale=0``) and guided by the classifier's entropy; the example prints the final
criterion per row. The weights are random, so the images mean nothing: the point is the API.
Run: ``python examples/guidance_tiny.py`` (needs the ``diffusion`` extra).
"""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler, UNet2DModel
from torch import nn

from synthperf.guidance import FeedbackGuidedPixelPipeline

torch.manual_seed(0)
unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                   down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                   norm_num_groups=4, num_class_embeds=4)  # 3 labels + the null label 3 (for CFG)
scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
classifier = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                           nn.Linear(32, 3))  # (B, 3, 8, 8) images in [0, 1] -> (B, 3) logits

pipe = FeedbackGuidedPixelPipeline(unet=unet, scheduler=scheduler, classifier=classifier, null_class_id=3)
rows = dict(class_ids=[0, 1, 2], seeds=[0, 1, 2], criterion="entropy", num_inference_steps=10, guidance_freq=2)
plain = pipe(fg_scale=0.0, **rows)
guided = pipe(fg_scale=0.1, **rows)

print(f"images {tuple(guided.images.shape)} {guided.images.dtype}, "
      f"range [{guided.images.min():.3f}, {guided.images.max():.3f}]")
print("entropy unguided:", " ".join(f"{v:.4f}" for v in plain.criterion))
print("entropy guided:  ", " ".join(f"{v:.4f}" for v in guided.criterion))
print("corrupted rows:", int(guided.corrupted.sum()))
