"""Kernel entry points. Each takes numpy arrays or torch tensors and ``backend=``.

| kernel | reference | cpu | cuda | triton |
|---|---|---|---|---|
| :func:`order_statistics` | numpy sort per row | C++ multi-select | bitwise select | bitwise select |
"""
from .order_stats import order_statistics, order_statistics_reference

__all__ = ["order_statistics", "order_statistics_reference"]
