"""Fuzz cases that still fail, each in a file this suite's author does not own (issue 17 item 2).

``KNOWN`` maps a case id (target|case|arg|detail) to the owner file and the defect.
tests/fuzz/test_fuzz_api.py fails on any other outcome than a clear error / the contiguous answer,
and on a listed case that now passes (then remove it here).
"""
from __future__ import annotations

OWNERS: dict[str, str] = {
    'knn_search': (
        'selective/knn.py, _common.py: a str array / k=10**30 reach torch/numpy before the dtype/size check, '
        'so the error does not name the argument'
    ),
    'EuclideanScore': (
        'selective/knn_scores.py, _common.py: a str array / k=10**30 reach torch/numpy before the dtype/size '
        'check'
    ),
    'SoftmaxScore': ('selective/logits.py, _common.py: a str array reaches torch.as_tensor before the dtype check'),
}

KNOWN_CASES: tuple[str, ...] = (
    'knn_search|bad|ref|str',
    'knn_search|bad|query|str',
    'knn_search|scalar|k|7',
    'EuclideanScore|bad|X|str',
    'EuclideanScore|bad|query|str',
    'EuclideanScore|scalar|k|7',
    'SoftmaxScore|bad|query|str',
)
KNOWN: dict[str, str] = {case: OWNERS[case.split("|")[0]] for case in KNOWN_CASES}
