"""Interop with other frameworks, shared by the systems and importing none of them.

- :mod:`.keras`: a Keras classifier as a torch-facing callable (``tf`` extra), and
  :func:`~synthperf.interop.keras.import_tensorflow` (loads Triton before TensorFlow).

Submodules are imported on use, so ``import synthperf.interop`` never imports TensorFlow.
"""
