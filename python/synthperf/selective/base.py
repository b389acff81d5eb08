"""Score base classes: ``UncertaintyScore``, ``RandomScore``, ``EmbeddingScore`` (spec §1.3-1.4).

Lifecycle: ``fit`` (reference, optional calibration set) -> ``set_threshold(q)`` -> ``select``.
``select`` never fits: before ``fit`` it raises RuntimeError; before ``set_threshold`` it uses the
documented default q = 0.99 and warns (UserWarning and a log line).
``select`` returns ``{"score": s, "selected": s < threshold}`` (strict, bool); lower score =
accept. The threshold is the linear-interpolated ``q``-quantile of ``self.scores``: scores of
the calibration set when one was given (``is_calibrated()``), else leave-one-out self-scores of
the reference (optimistic; an independent calibration set is recommended).

Two call styles are accepted (spec §0): version A (``fit(X=ref, Y=cal)``,
``fit(model=, loaders={"train", "val"})``, ``score(X)``) and version B aliases (``ref=``,
``cal=``, ``query=``, loaders key ``"cal"``; tensors or dicts with key ``"embedding"``).

Model mode embeds loader batches under ``torch.inference_mode`` in eval mode, restoring the
model's train/eval mode afterwards, with either protocol (:mod:`synthperf.selective._model_io`):
``model.embed(x)`` (version A; batches are a tensor, a list/tuple whose element 0 is the input, or
a dict with key ``"image"``) or ``model.extract(batch) -> {"embedding": (B, D), ...}`` (version B). Embeddings can be cached
under ``outdir`` with seapig's names (``{prefix}-embeddings-{train|val|cal}.pt`` for fit,
``{prefix}.pt`` for score/select, ``{prefix}-embedding.pt`` for ``extract`` models), written with
``torch.save`` and read only with ``torch.load(weights_only=True)`` (``_model_io``).
"""
from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ._common import SelectiveInputError, check_embeddings, check_q, logger, pick, quantile_threshold
from ._model_io import (batch_input, cache_path, check_embed_model, embed_batches, load_or_embed,  # noqa: F401
                        model_device, resolve_protocol)
from ._types import Loader, Loaders, Projection, ScoresOrInput, SelectiveModel, TensorInput


#: quantile level select() uses when no threshold was set (seapig's default; with a warning).
DEFAULT_Q = 0.99


#: seapig 0.3.0's wording for the same input errors (both versions' messages are kept, spec §1.4)
_B_TENSORS = " (Specify either pre-computed tensors (X and Y) or a model with a loader, but not both.)"

class UncertaintyScore(torch.nn.Module, ABC):
    """Abstract score: ``fit``, ``score`` and ``select`` plus the threshold lifecycle.

    Buffers: ``threshold`` (0-D, persistent) and ``scores`` (1-D calibration scores, not saved).
    """

    ident: str = "base"
    train_required: bool = False
    cal_required: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("threshold", None)
        self.register_buffer("scores", None, persistent=False)
        self.trained = False
        self.calibrated = False
        self.threshold_q_: float | None = None
        self.coverage_bounds_: tuple[float, float] | None = None

    # -- lifecycle flags ---------------------------------------------------------------------
    def requires_training(self) -> bool:
        return self.train_required

    def requires_calibration(self) -> bool:
        return self.cal_required

    def is_trained(self) -> bool:
        return self.trained

    def is_calibrated(self) -> bool:
        return self.calibrated

    def set_trained(self) -> None:
        self.trained = True

    def set_calibrated(self) -> None:
        self.calibrated = True

    def get_threshold(self) -> torch.Tensor | None:
        return self.threshold

    def _check_ready(self, action: str) -> None:
        if self.train_required and not self.trained:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(...) before {action}")
        if self.cal_required and not self.calibrated:
            raise RuntimeError(f"{type(self).__name__} needs a calibration set: call fit(..., Y=cal) before {action}")

    def set_threshold(self, q: float = 0.99, *, synthetic: ScoresOrInput | None = None, beta: float = 0.4) -> torch.Tensor:
        """Threshold = linear-interpolated ``q``-quantile of the stored scores; ``q`` in (0, 1].

        Accepting ``score < threshold`` keeps about a fraction ``q`` of calibration-like data;
        ``q = 1`` is the largest stored score (which itself is rejected by the strict ``<``).

        ``synthetic`` (beyond seapig): synthetic scores (1-D) or synthetic inputs for
        ``self.score`` (embeddings / logits, 2-D). The threshold is then the SPPI threshold
        (``synthperf.conformal.sppi_threshold``, specs/sppi.md §1c) at miscoverage ``alpha = 1 - q``
        with window slack ``beta``, computed from the few real calibration scores and the many
        synthetic ones. Whatever the synthetic data are, the accepted fraction of a new real
        sample lies in ``coverage_bounds_ = (lower, upper)`` (worst-case SPPI bounds), stored on
        the score and logged. Returns the threshold (0-D tensor).
        """
        q = check_q(q, allow_one=True)
        self._check_ready("set_threshold()")
        if self.scores is None:
            raise ValueError(f"{type(self).__name__} has no stored scores to set a threshold on: call fit(...) first")
        if synthetic is None:
            self.threshold = quantile_threshold(self.scores, q).to(self.scores.device)
            self.coverage_bounds_ = None
        else:
            self.threshold = self._sppi_threshold(q, synthetic, beta)
        self.threshold_q_ = q
        return self.threshold

    def _sppi_threshold(self, q: float, synthetic: ScoresOrInput, beta: float) -> torch.Tensor:
        from ..conformal import coverage_bounds, sppi_threshold

        if not self.calibrated:
            logger.warning("SPPI thresholds assume calibration scores exchangeable with test scores; this score "
                           "was fitted without a calibration set (leave-one-out reference scores)")
        synth = synthetic
        if isinstance(synth, (torch.Tensor, np.ndarray)) and synth.ndim == 1:
            synth = torch.as_tensor(synth)
        else:
            synth = self.score(synth)
        real = self.scores.detach().reshape(-1).cpu().double().numpy()
        syn = synth.detach().reshape(-1).cpu().double().numpy()
        if np.isnan(syn).any():
            raise ValueError("synthetic scores contain NaN")
        thr = sppi_threshold(real, syn, 1.0 - q, beta=beta)
        self.coverage_bounds_ = coverage_bounds(real.shape[0], syn.shape[0], 1.0 - q, beta)
        logger.info("SPPI threshold %.6g from %d real and %d synthetic scores; worst-case coverage in [%.3f, %.3f]",
                    thr, real.shape[0], syn.shape[0], *self.coverage_bounds_)
        dtype = self.scores.dtype if self.scores.is_floating_point() else torch.float32
        t = torch.tensor(thr, dtype=dtype)
        # SPPI accepts s <= thr; selection is the strict s < threshold, so step to the next float up
        return torch.nextafter(t, torch.tensor(float("inf"), dtype=dtype)).to(self.scores.device)

    def _default_threshold(self) -> None:
        """select() before set_threshold(): the one documented default (spec §1.3-1.4), never silent.

        Sets ``set_threshold(q=DEFAULT_Q)`` (0.99) from the stored scores - nothing is refitted -
        and says so as a UserWarning and a WARNING on the ``synthperf.selective`` logger.
        Call ``set_threshold(q)`` first to choose the coverage and avoid the warning.
        """
        msg = (f"Threshold has not been set. Trying to set it via `set_threshold()`: {type(self).__name__}.select() "
               f"uses the default q={DEFAULT_Q} on the stored {'calibration' if self.calibrated else 'reference'} "
               "scores; call set_threshold(q) before select() to choose the coverage")
        logger.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=4)
        self.set_threshold(DEFAULT_Q)

    def _selection(self, s: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.threshold is None:
            self._default_threshold()
        thr = self.threshold.to(device=s.device, dtype=s.dtype if s.is_floating_point() else torch.float32)
        return {"score": s, "selected": s < thr}

    @abstractmethod
    def fit(self, *args: object, **kwargs: object) -> "UncertaintyScore":
        """Fit on reference data (and optionally a calibration set)."""

    @abstractmethod
    def score(self, *args: object, **kwargs: object) -> torch.Tensor:
        """Scores (N,) of query samples; lower = more in-distribution."""

    @abstractmethod
    def select(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        """``{"score": (N,), "selected": (N,) bool}``."""

    def plot(self, query_scores: torch.Tensor | None = None, bins: int = 100, *, show: bool = True):
        """Histogram densities of the stored scores (and of ``query_scores`` (N,) if given) with the
        threshold as a dashed line; returns the ``matplotlib.figure.Figure``.

        ``show=True`` (default, seapig's behaviour): the figure is a pyplot figure and
        ``plt.show()`` is called (a no-op on non-interactive backends such as Agg; the figure stays
        open in pyplot until closed). ``show=False``: built with matplotlib's object API, so
        pyplot's backend, state and open figures are left untouched; display the returned figure
        (a notebook renders it) or save it with ``fig.savefig``. The backend is never changed.
        """
        if not isinstance(show, bool):
            raise TypeError(f"show must be a bool, got {type(show).__name__}")
        if self.scores is None:
            raise ValueError("nothing to plot: call fit(...) first")
        plt = _pyplot() if show else None
        fig = plt.figure(figsize=(6, 4)) if show else _figure_class()(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.hist(self.scores.detach().cpu().float().numpy(), bins=bins, density=True, alpha=0.6, label="calibration")
        if query_scores is not None:
            ax.hist(torch.as_tensor(query_scores).detach().cpu().float().numpy(), bins=bins, density=True,
                    alpha=0.6, label="query")
        if self.threshold is not None:
            ax.axvline(float(self.threshold), color="k", linestyle="--", label="threshold")
        ax.set_xlabel(f"{self.ident} score (lower = accept)")
        ax.legend()
        if show:
            plt.show()
        return fig


_NO_MATPLOTLIB = "matplotlib is not installed; install it to plot (pip install matplotlib)"


def _figure_class():
    """``matplotlib.figure.Figure``, imported lazily (ImportError naming the extra if missing)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_NO_MATPLOTLIB) from exc
    return Figure


def _pyplot():
    """``matplotlib.pyplot``, imported lazily (only for ``plot(show=True)``)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_NO_MATPLOTLIB) from exc
    return plt


class RandomScore(UncertaintyScore):
    """Baseline: uniform random scores in [0, 1); ``threshold = q`` so about ``q`` is accepted."""

    ident = "random"

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.set_threshold(0.99)

    def set_threshold(self, q: float = 0.99) -> torch.Tensor:
        """``threshold = q`` in (0, 1]; accepts a uniform score with probability q."""
        self.threshold = torch.tensor(check_q(q, allow_one=True))
        self.threshold_q_ = float(q)
        return self.threshold

    def fit(self, *args: object, **kwargs: object) -> "RandomScore":
        raise NotImplementedError("RandomScore has nothing to fit; call score()/select() directly")

    def score(self, X: TensorInput | None = None, *, query: TensorInput | None = None) -> torch.Tensor:
        _, x = pick(("X", X), ("query", query))
        if x is None:
            raise ValueError("score() needs the query samples (X= or query=)")
        if isinstance(x, Mapping):
            x = next(iter(x.values()))
        n = int(x.shape[0])
        return torch.rand(n, generator=self.generator)

    def select(self, X: TensorInput | None = None, *, query: TensorInput | None = None) -> dict[str, torch.Tensor]:
        return self._selection(self.score(X, query=query))


class EmbeddingScore(UncertaintyScore):
    """Scores computed on embeddings (N, D); subclasses implement ``_score_embeddings`` (and usually
    ``_fit_impl``), or version B's ``_fit``/``_score`` (see the defaults below).

    Buffers: ``ref_embeddings`` (persistent) and ``cal_embeddings`` (not saved). Fitted
    attribute ``n_features_in_`` is the input embedding dimension D (before any PCA).
    """

    train_required = True

    def __init__(self, pca: Projection | None = None) -> None:
        super().__init__()
        self.pca = pca
        self.register_buffer("ref_embeddings", None)
        self.register_buffer("cal_embeddings", None, persistent=False)
        self.n_features_in_: int | None = None

    # -- input resolution ---------------------------------------------------------------------
    def _fit_inputs(self, X, Y, model, loaders, outdir, prefix, ref, cal):
        _, X = pick(("X", X), ("ref", ref))
        _, Y = pick(("Y", Y), ("cal", cal))
        if X is not None and (model is not None or loaders is not None):
            raise ValueError("Cannot specify both embeddings (X/Y) and model+loaders. Pass one or the other."
                             + _B_TENSORS)
        if X is None and model is None and loaders is None:
            if Y is not None:
                raise ValueError("Y/cal was given without reference embeddings: pass X= (or ref=) too")
            raise ValueError("Must specify either embeddings (X) or model+loaders for fitting." + _B_TENSORS)
        if X is not None:
            ref_t = check_embeddings(X, "X (reference embeddings)")
            cal_t = None if Y is None else check_embeddings(Y, "Y (calibration embeddings)", dim=ref_t.shape[1])
            return ref_t, cal_t
        if model is None:
            raise SelectiveInputError("model is required when not using precomputed embeddings." + _B_TENSORS)
        if loaders is None:
            raise SelectiveInputError("loaders is required when using a model." + _B_TENSORS)
        if not isinstance(loaders, Mapping):
            raise TypeError(f"loaders must be a dict with keys 'train' and optionally 'val' (or 'cal'), "
                            f"got {type(loaders).__name__}")
        unknown = set(loaders) - {"train", "val", "cal"}
        if unknown:
            raise ValueError(f"unknown loaders keys {sorted(unknown)}: expected 'train' and 'val' (alias 'cal')")
        if "train" not in loaders:
            raise KeyError("loaders must contain a 'train' loader (the reference set)")
        if "val" in loaders and "cal" in loaders:
            raise ValueError("loaders 'val' and 'cal' are aliases; pass only one of them")
        _, key = resolve_protocol(model, "embedding")  # TypeError naming the method(s) before any work
        ref_t = check_embeddings(load_or_embed(cache_path(outdir, prefix, "-embeddings-train"), model,
                                               loaders["train"], key=key), "embeddings of loaders['train']")
        cal_key = "val" if "val" in loaders else ("cal" if "cal" in loaders else None)
        cal_t = None
        if cal_key is not None:
            cal_t = check_embeddings(load_or_embed(cache_path(outdir, prefix, f"-embeddings-{cal_key}"), model,
                                                   loaders[cal_key], key=key), f"embeddings of loaders[{cal_key!r}]",
                                     dim=ref_t.shape[1])
        return ref_t, cal_t

    def _query_input(self, X, model, loader, outdir, prefix, query) -> torch.Tensor:
        _, X = pick(("X", X), ("query", query))
        if X is not None and (model is not None or loader is not None):
            raise ValueError("Cannot specify both embeddings (X) and model+loader. Pass one or the other." + _B_TENSORS)
        if X is not None:
            return X
        if model is None and loader is None:
            raise ValueError("Must specify either embeddings (X) or model+loader." + _B_TENSORS)
        if model is None:
            raise SelectiveInputError("model is required when not using precomputed embeddings." + _B_TENSORS)
        if loader is None:
            raise SelectiveInputError("loader is required when using a model." + _B_TENSORS)
        _, key = resolve_protocol(model, "embedding")
        # seapig's query cache names: git main `<prefix>.pt`, 0.3.0 (extract models) `<prefix>-embedding.pt`
        return load_or_embed(cache_path(outdir, prefix, "" if key is None else "-embedding"), model, loader, key=key)

    # -- public API ----------------------------------------------------------------------------
    def fit(self, X: TensorInput | None = None, Y: TensorInput | None = None, model: SelectiveModel | None = None,
            loaders: Loaders | None = None,
            outdir: str | Path | None = None, prefix: str | None = None, *, ref: TensorInput | None = None,
            cal: TensorInput | None = None, q: float | bool = False) -> "EmbeddingScore":
        """Fit on reference embeddings ``X`` (N, D) and optional calibration embeddings ``Y`` (M, D),
        or on ``model.embed`` outputs over ``loaders["train"]`` / ``loaders["val"]``.

        ``q`` (float in (0, 1), or False) first trims the reference to rows whose leave-one-out
        score is below its ``q``-quantile. Returns self.
        """
        ref_t, cal_t = self._fit_inputs(X, Y, model, loaders, outdir, prefix, ref, cal)
        if q is not False and q is not None and q != 0:
            q = check_q(q)
        else:
            q = None
        self.ref_embeddings = ref_t
        self.cal_embeddings = cal_t
        self.n_features_in_ = int(ref_t.shape[1])
        self.trained = self.calibrated = False
        self.threshold = None
        if inspect.signature(self._fit_impl).parameters:
            self._fit_impl(q)
        elif type(self).fit is EmbeddingScore.fit:
            self._fit_impl()
        # else: a seapig-A subclass whose own fit() calls super().fit(...) and then self._fit_impl()
        return self

    def _check_query(self, X: TensorInput) -> torch.Tensor:
        self._check_ready("score()/select()")
        return check_embeddings(X, "X (query embeddings)", dim=self.n_features_in_)

    def score(self, X: TensorInput | None = None, model: SelectiveModel | None = None, loader: Loader | None = None,
              outdir: str | Path | None = None, prefix: str | None = None, *,
              query: TensorInput | None = None) -> torch.Tensor:
        """Scores (N,) of query embeddings ``X`` (N, D), or of ``model.embed`` over ``loader``."""
        x = self._query_input(X, model, loader, outdir, prefix, query)
        return self._score_embeddings(self._check_query(x))

    def select(self, X: TensorInput | None = None, model: SelectiveModel | None = None, loader: Loader | None = None,
               outdir: str | Path | None = None, prefix: str | None = None, *,
               query: TensorInput | None = None) -> dict[str, torch.Tensor]:
        """``{"score": (N,), "selected": score < threshold}`` (bool, strict).

        Raises RuntimeError before ``fit``. Without a prior ``set_threshold(q)`` the threshold is
        set from the stored scores at q = 0.99 with a UserWarning (seapig's default); nothing is
        fitted or recalibrated here."""
        x = self._query_input(X, model, loader, outdir, prefix, query)
        return self._selection(self._score_embeddings(self._check_query(x)))

    def set_threshold(self, q: float = 0.99, *, synthetic: ScoresOrInput | None = None, beta: float = 0.4) -> torch.Tensor:
        return super().set_threshold(q, synthetic=synthetic, beta=beta)

    # -- hooks ---------------------------------------------------------------------------------
    def _fit_pca(self) -> None:
        """Fit ``self.pca`` on the reference and project reference and calibration embeddings."""
        self.pca.fit(self.ref_embeddings)
        self.ref_embeddings = self.pca.transform(self.ref_embeddings)
        if self.cal_embeddings is not None:
            self.cal_embeddings = self.pca.transform(self.cal_embeddings)

    def plot_embs(self, query_embeddings: TensorInput | None = None, method: str = "tsne", method_args: dict | None = None, *,
                  query: TensorInput | None = None):
        """2-D map (``"tsne"``, or ``"umap"`` when umap-learn is installed) of the reference embeddings
        (as stored, i.e. after any PCA) and ``query_embeddings`` (M, D, original space); returns a
        ``matplotlib.figure.Figure`` (coordinates in ``fig.embedding_xy_``). ValueError for another
        method, ImportError naming the missing package. t-SNE is O(N²): subsample large sets.
        ``query=`` is seapig 0.3.0's name for ``query_embeddings``."""
        from ._plots import plot_embeddings

        _, query_embeddings = pick(("query_embeddings", query_embeddings), ("query", query))

        if self.ref_embeddings is None:
            raise ValueError("nothing to plot: call fit(...) first")
        q = None
        if query_embeddings is not None:
            q = check_embeddings(query_embeddings, "query_embeddings", dim=self.n_features_in_)
            if self.pca is not None:
                q = self.pca.transform(q)
        fig, xy = plot_embeddings(self.ref_embeddings, q, method=method, method_args=method_args,
                                  title=f"{self.ident}: {method}")
        fig.embedding_xy_ = xy
        return fig

    def _apply_pca(self) -> None:
        """Version B's name for :meth:`_fit_pca` (fit the PCA on the reference, project ref and cal)."""
        self._fit_pca()

    # A user subclass written for either seapig version works (issue 15 item 2): version A
    # subclasses define only ``_score_embeddings(X)``; version B subclasses define ``_fit(q)``
    # and ``_score(query)``. Built-in scores override ``_fit_impl`` and ``_score_embeddings``.
    def _fit_impl(self, q: float | None) -> None:
        """Fit from ``self.ref_embeddings`` / ``self.cal_embeddings``; set ``scores`` and flags.

        Default: call a version-B ``_fit(q)`` if the subclass has one; then, if it left
        ``scores`` unset, score the calibration embeddings (calibrated) or else the reference
        embeddings (optimistic, not calibrated) with the subclass's score; mark trained.
        """
        if callable(getattr(self, "_fit", None)):
            self._fit(q)
        elif q is not None:
            raise ValueError(f"q={q}: {type(self).__name__} defines no reference trimming (no _fit_impl/_fit); "
                             "fit without q")
        if self.scores is None:
            if self.cal_embeddings is not None:
                self.scores = self._score_embeddings(self.cal_embeddings)
                self.set_calibrated()
            else:
                self.scores = self._score_embeddings(self.ref_embeddings)
        if not self.trained:
            self.set_trained()

    def _score_embeddings(self, X: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of validated query embeddings X (N, D) in the original space.

        Default: a version-B subclass's ``_score(query)``; otherwise NotImplementedError."""
        fn = getattr(self, "_score", None)
        if callable(fn):
            return fn(X)
        raise NotImplementedError(f"{type(self).__name__} must define _score_embeddings(X) (seapig git main) or "
                                  "_score(query) (seapig 0.3.0)")
