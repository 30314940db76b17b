"""The trainable document-type model: TF-IDF word 1-2-grams and character 2-5-grams, a linear
SVM with balanced class weights (scikit-learn), saved with joblib where the caller says.

It keeps its training examples, so ``retrain`` with agents' corrections (triage labels) refits on
old examples plus corrections, a correction replacing an example with the same text.  Scores
are a softmax over the SVM's decision values: a ranking, not a calibrated probability.

Load models only from paths you control: joblib files are pickles and run code when loaded.
"""

from __future__ import annotations

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
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from classify.errors import ClassifyError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
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


@dataclass
class DocTypeModel:
    pipeline: Pipeline
    examples: list[Example]
    params: ModelParams = field(default_factory=ModelParams)
    trained_at: str = ""

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
        pipeline = build_pipeline(p, n_examples=len(clean))
        pipeline.fit([t for t, _ in clean], [label for _, label in clean])
        log.info("document-type model trained on %d examples of %d types", len(clean), len(labels))
        return cls(pipeline, clean, p, datetime.now(UTC).isoformat())

    def retrain(self, corrections: Sequence[Example]) -> DocTypeModel:
        """A new model on the old examples plus ``corrections`` (a correction replaces an example
        with the same text)."""
        merged = dict(self.examples)
        merged.update((t[:MAX_CHARS], label) for t, label in corrections if t and t.strip() and label)
        return DocTypeModel.train(list(merged.items()), params=self.params)

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely type and its score (0..1)."""
        return self.rank(text)[0]

    def rank(self, text: str) -> list[tuple[str, float]]:
        scores = np.asarray(self.pipeline.decision_function([text[:MAX_CHARS]]), dtype=float)[0]
        classes = self.labels
        if scores.ndim == 0 or len(classes) == 2:  # binary: one decision value for classes_[1]
            value = float(np.ravel(scores)[0])
            scores = np.array([-value, value])
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
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ModelError(f"{path} is not a casework document-type model (format {FORMAT_VERSION})")
        if payload.get("sklearn") != sklearn.__version__:
            log.warning("model %s was saved with scikit-learn %s, running %s; retrain it if it misbehaves",
                        path, payload.get("sklearn"), sklearn.__version__)
        model = payload["model"]
        if not isinstance(model, cls):
            raise ModelError(f"{path} does not hold a DocTypeModel")
        return model
