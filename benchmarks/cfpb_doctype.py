"""Document-type routing measured on the CFPB complaints (../shared/corpus/labelled): product from
the narrative, macro-F1 with stratified 5-fold cross-validation (shuffled, seed 0), for the
paperless-ngx style baseline (word 1-2-gram counts, min_df 0.01, MLPClassifier tol 0.01,
max_iter 200) and for casework's model (``classify.doctype_model.DocTypeModel.train``: TF-IDF,
LinearSVC, per-class offsets tuned by its own internal CV), in one run.  Prints JSON lines.

Extra training data (``--extra``, default the 2023 CFPB export in ../shared/corpus/csv: 389
narratives): added to every fold's *training* part for both models, never to a test part; each
model is also measured without it.  Nothing is tuned on the test folds.

Labels: the CFPB renamed products in 2017; the four old names in the sample (Credit card,
Payday loan, Consumer Loan, Bank account or service: 6 narratives) are mapped to their
successors, as a router would.  ``--raw-labels`` keeps them (13 classes, 4 with 1-2 examples).

    python -m benchmarks.cfpb_doctype [--corpus PATH] [--extra PATH | --no-extra] [--folds 5] [--raw-labels]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from classify.doctype_model import DocTypeModel, ModelParams

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "labelled" / \
    "cfpb__complaints_sample_2015-2020_labelled.csv"
EXTRA = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "csv" / \
    "cfpb__complaints_export_truncated_1MiB.csv"
RENAMED = {
    "Credit card": "Credit card or prepaid card",
    "Payday loan": "Payday loan, title loan, or personal loan",
    "Consumer Loan": "Payday loan, title loan, or personal loan",
    "Bank account or service": "Checking or savings account",
}


def load(path: Path, *, raw_labels: bool) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = (row.get("Consumer complaint narrative") or "").strip()
            if text:
                texts.append(text)
                product = row["Product"]
                labels.append(product if raw_labels else RENAMED.get(product, product))
    return texts, labels


def paperless_baseline() -> Pipeline:
    """What paperless-ngx's classifier does: word unigram+bigram counts and an MLP."""
    return Pipeline([("counts", CountVectorizer(analyzer="word", ngram_range=(1, 2), min_df=0.01)),
                     ("mlp", MLPClassifier(tol=0.01, max_iter=200, random_state=0))])


def _fold(name: str, texts: list[str], y: np.ndarray, train: np.ndarray, test: np.ndarray,
          extra: tuple[list[str], list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, predictions) of one fold: fit on the fold's training part plus ``extra``."""
    train_texts = [texts[i] for i in train] + extra[0]
    train_labels = [str(v) for v in y[train]] + extra[1]
    test_texts = [texts[i] for i in test]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The least populated class")
        if name.startswith("paperless"):
            model = paperless_baseline().fit(np.array(train_texts, dtype=object), train_labels)
            return test, np.asarray(model.predict(np.array(test_texts, dtype=object)))
        params = ModelParams(tune_bias="no_bias" not in name)
        trained = DocTypeModel.train(list(zip(train_texts, train_labels, strict=True)), params=params)
        return test, np.array(trained.predict_many(test_texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--extra", type=Path, default=EXTRA, help="labelled narratives added to training only")
    parser.add_argument("--no-extra", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--raw-labels", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    texts, labels = load(args.corpus, raw_labels=args.raw_labels)
    known = set(texts)
    extra_texts, extra_labels = ([], []) if args.no_extra else load(args.extra, raw_labels=args.raw_labels)
    extra = ([t for t in extra_texts if t not in known], [lab for t, lab in zip(extra_texts, extra_labels,
                                                                                strict=True) if t not in known])
    y = np.array(labels)
    print(json.dumps({"benchmark": "cfpb_doctype", "narratives": len(texts), "classes": len(set(labels)),
                      "extra_training_narratives": len(extra[0]), "folds": args.folds,
                      "labels": "raw" if args.raw_labels else "2017 renames mapped"}))
    splits = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    runs = [("paperless_baseline", False), ("casework_model_no_bias", False), ("casework_model", False)]
    if extra[0]:
        runs += [("paperless_baseline+extra", True), ("casework_model+extra", True)]
    for name, with_extra in runs:
        start = time.perf_counter()
        folds = Parallel(n_jobs=args.jobs)(
            delayed(_fold)(name, texts, y, train, test, extra if with_extra else ([], []))
            for train, test in splits)
        predicted = np.empty(len(y), dtype=object)
        for test, fold_predictions in folds:
            predicted[test] = fold_predictions
        print(json.dumps({"model": name, "macro_f1": round(float(f1_score(y, predicted, average="macro")), 4),
                          "accuracy": round(float(np.mean(predicted == y)), 4),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
