"""Triton kernels shipped inside the package as ``synthperf.kernels.triton``.

Import these modules only when the ``triton`` backend was chosen: with no GPU, Triton
needs ``TRITON_INTERPRET=1`` set *before* a ``@triton.jit`` module is imported.
"""
