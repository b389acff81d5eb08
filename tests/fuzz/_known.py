"""Fuzz cases that still fail, each in a file this suite's author does not own (issue 17 item 2).

``KNOWN`` maps a case id (target|case|arg|detail) to the owner file and the defect.
tests/fuzz/test_fuzz_api.py fails on any other outcome than a clear error / the contiguous answer,
and on a listed case that now passes (then remove it here).
"""
from __future__ import annotations

OWNERS: dict[str, str] = {
    'discrete_score': (
        'ops/discrete_score.py: a subnormal float64 gamma (1e-320) passes the cast check but 1/gamma '
        'overflows: NaN scores'
    ),
    'knn_search': (
        'selective/knn.py, _common.py: a str array / k=10**30 reach torch/numpy before the dtype/size check, '
        'so the error does not name the argument'
    ),
    'EuclideanScore': (
        'selective/knn_scores.py, _common.py: a str array / k=10**30 reach torch/numpy before the dtype/size '
        'check'
    ),
    'SoftmaxScore': ('selective/logits.py, _common.py: a str array reaches torch.as_tensor before the dtype check'),
    'pca_eigenbasis': (
        'flows/schedules.py: inf passes to eigh (LinAlgError); Fortran/transposed x changes the last bits '
        '(np.cov on a non-C array): use float_array(..., finite) + np.ascontiguousarray'
    ),
    'make_toy': ("flows/toy_data.py: n=10**30 gives numpy's 'Maximum allowed size exceeded' (no upper bound naming n)"),
    'time_grid': ("flows/pfode.py: n=10**30 gives numpy's 'Maximum allowed size exceeded' (no upper bound naming n)"),
    'g_vector': ("flows/schedules.py: data_dim=10**30 gives numpy's 'Maximum allowed dimension exceeded'"),
    'ifs_times': ("flows/pfode.py: n=10**30 gives numpy's 'Maximum allowed size exceeded'"),
    'vp_ode_times': ('flows/pfode.py: n=10**30 unclear; eps_s=0 accepted (spec: eps_s > 0?)'),
    'InflationSchedule.from_data': (
        'flows/schedules.py: Fortran/transposed data changes the last bits (pca_eigenbasis without '
        'ascontiguousarray)'
    ),
    'loss_criterion': (
        'guidance/criteria.py: no input validation (NaN logits accepted; shape/label errors come from torch '
        'without the argument name; out-of-range labels IndexError; numpy/negative-stride inputs not '
        'converted)'
    ),
    'entropy_criterion': ("guidance/criteria.py: no input validation (NaN/empty/3-D logits accepted; torch's own errors)"),
    'HardnessCriterion.fit': ("guidance/criteria.py: inf features reach sklearn ('Input contains NaN')"),
    'FeedbackGuidanceStep': (
        'guidance/step.py: forward validates nothing (NaN z/w accepted, y/w length mismatch and bad labels '
        'give torch errors; classifier_size <= 0 not checked in __init__); Fortran/strided z changes the '
        'answer (last bits; non-contiguous conv/norm)'
    ),
}

KNOWN_CASES: tuple[str, ...] = (
    'discrete_score|scalar|gamma|4',
    'knn_search|bad|ref|str',
    'knn_search|bad|query|str',
    'knn_search|scalar|k|7',
    'EuclideanScore|bad|X|str',
    'EuclideanScore|bad|query|str',
    'EuclideanScore|scalar|k|7',
    'SoftmaxScore|bad|query|str',
    'pca_eigenbasis|bad|x|inf',
    'pca_eigenbasis|layout|x|fortran',
    'pca_eigenbasis|layout|x|transposed',
    'make_toy|scalar|n|7',
    'time_grid|scalar|n|7',
    'g_vector|scalar|data_dim|7',
    'ifs_times|scalar|n|7',
    'vp_ode_times|scalar|n|7',
    'vp_ode_times|scalar|eps_s|0',
    'InflationSchedule.from_data|layout|x|fortran',
    'InflationSchedule.from_data|layout|x|transposed',
    'loss_criterion|bad|logits|nan',
    'loss_criterion|bad|logits|empty',
    'loss_criterion|bad|logits|0d',
    'loss_criterion|bad|logits|3d',
    'loss_criterion|bad|logits|object',
    'loss_criterion|bad|logits|str',
    'loss_criterion|bad|logits|mismatch',
    'loss_criterion|bad|y|empty',
    'loss_criterion|bad|y|0d',
    'loss_criterion|bad|y|3d',
    'loss_criterion|bad|y|mismatch',
    'loss_criterion|bad|y|nan',
    'loss_criterion|extra|y|0',
    'loss_criterion|extra|y|1',
    'loss_criterion|layout|logits|reversed',
    'entropy_criterion|bad|logits|nan',
    'entropy_criterion|bad|logits|empty',
    'entropy_criterion|bad|logits|0d',
    'entropy_criterion|bad|logits|3d',
    'entropy_criterion|bad|logits|object',
    'entropy_criterion|bad|logits|str',
    'entropy_criterion|layout|logits|reversed',
    'HardnessCriterion.fit|bad|features|inf',
    'FeedbackGuidanceStep|bad|z|nan',
    'FeedbackGuidanceStep|bad|z|object',
    'FeedbackGuidanceStep|bad|z|str',
    'FeedbackGuidanceStep|bad|y|mismatch',
    'FeedbackGuidanceStep|bad|y|nan',
    'FeedbackGuidanceStep|bad|y|empty',
    'FeedbackGuidanceStep|bad|w|mismatch',
    'FeedbackGuidanceStep|bad|w|nan',
    'FeedbackGuidanceStep|scalar|classifier_size|0',
    'FeedbackGuidanceStep|scalar|classifier_size|1',
    'FeedbackGuidanceStep|extra|y|0',
    'FeedbackGuidanceStep|layout|z|fortran',
    'FeedbackGuidanceStep|layout|z|transposed',
    'FeedbackGuidanceStep|layout|z|strided',
    'FeedbackGuidanceStep|layout|z|reversed',
)
KNOWN: dict[str, str] = {case: OWNERS[case.split("|")[0]] for case in KNOWN_CASES}
