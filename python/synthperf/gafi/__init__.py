"""GaFi: post-processing of conditional-GAN synthetic data for CAS (Lampis et al., BMVC 2023).

PyTorch port of ``sup3rgiu/GaFi-Pipeline`` (spec: ``shared/specs/gafi.md``):

- :mod:`.data` - digits (default), CIFAR-10/100 (python format via a restricted unpickler, or
  binary) and Fashion-MNIST (IDX) readers, no download;
- :mod:`.classifier` - ResNet-20 (option A), SGDW, the training recipe, checkpoints/resume;
- :mod:`.gan`, :mod:`.gan_train` - BigGAN-deep G + projection D, hinge/Adam/EMA training;
- :mod:`.sampling` - Expansion Trick, batched Dynamic Sample Filtering, Dynamic Dataset
  Recycle and MultiGAN sources;
- :mod:`.pipeline` - CAS (clean val-selected protocol, or upstream's test-selected one), the
  greedy ckpt -> sigma -> tau search and MultiGAN;
- :mod:`.experiment` - the end-to-end run; :mod:`.cli` - ``synthperf gafi ...``;
- a Keras classifier as DSF filter / evaluator: :mod:`synthperf.interop.keras` (``tf`` extra).
"""
from __future__ import annotations

from .._io import CheckpointError
from .classifier import SGDW, ClassifierConfig, ResNet20, accuracy, fit_classifier, load_classifier
from .data import DatasetSplits, ImageData, UnsafePickleError, load_dataset
from .gan import Discriminator, GANConfig, Generator
from .gan_train import GANTrainConfig, load_generator, train_gan
from .pipeline import PROTOCOLS, PipelineConfig, gafi_search, run_cas, run_multigan
from .sampling import DSFStallError, SamplerSpec, SyntheticSource, generate_filtered, sample_latent

__all__ = [
    "CheckpointError", "SGDW", "ClassifierConfig", "ResNet20", "accuracy", "fit_classifier", "load_classifier",
    "DatasetSplits", "ImageData", "UnsafePickleError", "load_dataset", "Discriminator", "GANConfig", "Generator",
    "GANTrainConfig", "load_generator", "train_gan", "PROTOCOLS", "PipelineConfig", "gafi_search", "run_cas",
    "run_multigan", "SamplerSpec", "SyntheticSource", "DSFStallError", "generate_filtered", "sample_latent",
]
