"""Size guard for the flows grids, schedules and toy data (issue 17): a count so large that its
array could never fit (``n = 10**30``) is refused with a ValueError naming the argument before
numpy tries to allocate it (numpy's own 'Maximum allowed size exceeded' names nothing)."""
from __future__ import annotations

import os


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (2**40 when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 1 << 40


def check_alloc(n: int, name: str, *, bytes_per: int = 8) -> int:
    """``n`` (an already validated int) if ``n * bytes_per`` bytes fit in physical memory.

    ``bytes_per``: bytes the result needs per unit of ``n`` (8 for one float64 per step,
    8 * d for a float64 [n, d] array). ValueError naming ``name`` otherwise.
    """
    need, have = n * bytes_per, memory_bytes()
    if need > have:
        raise ValueError(f"{name} = {n} is too large: the result would need {need / 2**30:.3g} GiB, "
                         f"more than this machine's {have / 2**30:.3g} GiB of memory")
    return n
