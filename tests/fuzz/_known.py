"""Fuzz cases that still fail, each in a file this suite's author does not own (issue 17 item 2).

``KNOWN`` maps a case id (target|case|arg|detail) to the owner file and the defect.
tests/fuzz/test_fuzz_api.py fails on any other outcome than a clear error / the contiguous answer,
and on a listed case that now passes (then remove it here).
"""
from __future__ import annotations

OWNERS: dict[str, str] = {}

#: empty: the last 7 (selective str arrays and k=10**30) were fixed in selective/_common.py and knn.py
KNOWN_CASES: tuple[str, ...] = ()
KNOWN: dict[str, str] = {case: OWNERS[case.split("|")[0]] for case in KNOWN_CASES}
