"""The trainable document-type model: TF-IDF word 1-2-grams and character 2-5-grams, a linear
SVM with balanced class weights (scikit-learn), saved with joblib where the caller says.

Class bias: training also fits one additive offset per type to the SVM's decision values,
chosen by an internal 5-fold cross-validation of the training examples to maximise macro-F1
(coordinate ascent over a grid, smaller offsets preferred on ties).  It lifts the small types a
one-vs-rest SVM under-predicts; it costs five extra fits at training time and nothing at
prediction.  ``ModelParams(tune_bias=False)`` turns it off.

It keeps its training examples, so ``retrain`` with agents' corrections (triage labels) refits on
old examples plus corrections, a correction replacing an example with the same text.  Scores
are a softmax over the SVM's decision values: a ranking, not a calibrated probability.

Load models only from paths you control: joblib files are pickles and run code when loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from classify.errors import ClassifyError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # version 1 models have no class bias
BIAS_STEPS = np.linspace(-1.5, 1.5, 31)  # offsets in units of the decision values' spread
BIAS_ROUNDS = 2
MAX_CHARS = 20_000
Example = tuple[str, str]  # (text, doc type)


class ModelError(ClassifyError):
    """The model cannot be trained or loaded (too few types, wrong file); the message says why."""


@dataclass(frozen=True, slots=True)
class ModelParams:
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 2
    c: float = 0.2  # LinearSVC regularisation
    temperature: float = 0.3  # softmax over decision values
    tune_bias: bool = True  # per-type offsets chosen by internal cross-validation for macro-F1
    bias_folds: int = 5


def build_pipeline(params: ModelParams | None = None, *, n_examples: int = 1000) -> Pipeline:
    """The untrained pipeline (also what benchmarks/cfpb_doctype.py measures)."""
    p = params or ModelParams()
    min_df = p.min_df if n_examples >= 50 else 1
    features = FeatureUnion([
        ("words", TfidfVectorizer(sublinear_tf=True, ngram_range=p.word_ngrams, min_df=min_df, max_df=0.9,
                                  strip_accents="unicode")),
        ("chars", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=p.char_ngrams, min_df=min_df,
                                  strip_accents="unicode")),
    ])
    return Pipeline([("features", features), ("svm", LinearSVC(C=p.c, class_weight="balanced"))])


def _macro_f1(y: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> float:
    return float(f1_score(y, classes[scores.argmax(1)], average="macro", labels=classes, zero_division=0))


def fit_class_bias(y: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per-class offsets to add to ``scores`` (rows centred, in units of their spread) that
    maximise macro-F1 on ``y``: coordinate ascent over ``BIAS_STEPS``, ties to the smaller offset."""
    bias = np.zeros(len(classes))
    best = _macro_f1(y, scores, classes)
    for _ in range(BIAS_ROUNDS):
        for c in range(len(classes)):
            candidates = []
            for step in BIAS_STEPS:
                trial = bias.copy()
                trial[c] = step
                candidates.append((_macro_f1(y, scores + trial, classes), -abs(step), step))
            f1, _, step = max(candidates)
            if f1 > best + 1e-9:
                best, bias[c] = f1, step
    return bias


def _centred(scores: np.ndarray) -> np.ndarray:
    return scores - scores.mean(axis=1, keepdims=True)


def _decision(pipeline: Pipeline, texts: Sequence[str]) -> np.ndarray:
    scores = np.asarray(pipeline.decision_function([t[:MAX_CHARS] for t in texts]), dtype=float)
    if scores.ndim == 1:  # binary: one decision value for classes_[1]
        scores = np.column_stack([-scores, scores])
    return scores


def learn_bias(texts: list[str], labels: list[str], params: ModelParams) -> tuple[np.ndarray, float] | None:
    """(raw offsets to add to decision values, spread) from out-of-fold decision values of an
    internal stratified cross-validation; None when a type has too few examples to split."""
    y = np.array(labels)
    classes, counts = np.unique(y, return_counts=True)
    folds = min(params.bias_folds, int(counts.min()))
    if folds < 2 or len(classes) < 3:
        return None
    oof = np.zeros((len(texts), len(classes)))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=1).split(np.zeros(len(y)), y):
        inner = build_pipeline(params, n_examples=len(train)).fit([texts[i] for i in train], y[train])
        oof[test] = _decision(inner, [texts[i] for i in test])
    centred = _centred(oof)
    spread = float(centred.std()) or 1.0
    bias = fit_class_bias(y, centred / spread, classes)
    return bias * spread, spread


def _upgraded(params: ModelParams) -> ModelParams:
    """Params unpickled from an older model lack newer fields: take their defaults."""
    return ModelParams(**{f.name: getattr(params, f.name) for f in dataclasses.fields(ModelParams)
                          if hasattr(params, f.name)})


@dataclass
class DocTypeModel:
    pipeline: Pipeline
    examples: list[Example]
    params: ModelParams = field(default_factory=ModelParams)
    trained_at: str = ""
    bias: list[float] | None = None  # added to the decision values, in classes_ order

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    @classmethod
    def train(cls, examples: Sequence[Example], *, params: ModelParams | None = None) -> DocTypeModel:
        clean = [(t[:MAX_CHARS], label) for t, label in examples if t and t.strip() and label]
        labels = {label for _, label in clean}
        if len(labels) < 2:
            raise ModelError(f"training needs examples of at least two document types; got {sorted(labels)}")
        p = params or ModelParams()
        texts, ys = [t for t, _ in clean], [label for _, label in clean]
        pipeline = build_pipeline(p, n_examples=len(clean))
        pipeline.fit(texts, ys)
        bias = learn_bias(texts, ys, p) if p.tune_bias else None
        if bias is not None:
            log.info("class offsets for macro-F1: %s", dict(zip(pipeline.classes_, np.round(bias[0], 3), strict=True)))
        log.info("document-type model trained on %d examples of %d types", len(clean), len(labels))
        return cls(pipeline, clean, p, datetime.now(UTC).isoformat(),
                   None if bias is None else [float(b) for b in bias[0]])

    def retrain(self, corrections: Sequence[Example]) -> DocTypeModel:
        """A new model on the old examples plus ``corrections`` (a correction replaces an example
        with the same text)."""
        merged = dict(self.examples)
        merged.update((t[:MAX_CHARS], label) for t, label in corrections if t and t.strip() and label)
        return DocTypeModel.train(list(merged.items()), params=_upgraded(self.params))

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely type and its score (0..1)."""
        return self.rank(text)[0]

    def predict_many(self, texts: Sequence[str]) -> list[str]:
        """The most likely type of each text (one vectorisation for all: what a benchmark needs)."""
        scores = self._scores(texts)
        return [self.labels[i] for i in scores.argmax(axis=1)]

    def _scores(self, texts: Sequence[str]) -> np.ndarray:
        scores = _decision(self.pipeline, texts)
        bias = getattr(self, "bias", None)  # absent from version 1 models
        return scores + np.asarray(bias) if bias is not None else scores

    def rank(self, text: str) -> list[tuple[str, float]]:
        scores = self._scores([text])[0]
        classes = self.labels
        weights = np.exp((scores - scores.max()) / self.params.temperature)
        probs = weights / weights.sum()
        order = np.argsort(-probs)
        return [(classes[i], float(probs[i])) for i in order]

    def save(self, path: Path) -> None:
        """Write atomically (temp file, then rename) with joblib."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"format": FORMAT_VERSION, "sklearn": sklearn.__version__, "model": self}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            joblib.dump(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> DocTypeModel:
        try:
            payload = joblib.load(path)
        except FileNotFoundError as exc:
            raise ModelError(f"no document-type model at {path}; train one first") from exc
        if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
            raise ModelError(f"{path} is not a casework document-type model (format {FORMAT_VERSION})")
        if payload.get("sklearn") != sklearn.__version__:
            log.warning("model %s was saved with scikit-learn %s, running %s; retrain it if it misbehaves",
                        path, payload.get("sklearn"), sklearn.__version__)
        model = payload["model"]
        if not isinstance(model, cls):
            raise ModelError(f"{path} does not hold a DocTypeModel")
        return model
