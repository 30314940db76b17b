"""Document-type routing measured on the CFPB complaints (../shared/corpus/labelled): product from
the narrative, macro-F1 with stratified 5-fold cross-validation, for the paperless-ngx style
baseline (word 1-2-gram counts, min_df 0.01, MLPClassifier tol 0.01, max_iter 200) and for
casework's model (``classify.doctype_model.build_pipeline``), in one run.  Prints JSON lines.

Labels: the CFPB renamed products in 2017; the four old names in the sample (Credit card,
Payday loan, Consumer Loan, Bank account or service: 6 narratives) are mapped to their
successors, as a router would.  ``--raw-labels`` keeps them (13 classes, 4 with 1-2 examples).

    python -m benchmarks.cfpb_doctype [--corpus PATH] [--folds 5] [--raw-labels]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from classify.doctype_model import build_pipeline

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "labelled" / \
    "cfpb__complaints_sample_2015-2020_labelled.csv"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--raw-labels", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    texts, labels = load(args.corpus, raw_labels=args.raw_labels)
    y = np.array(labels)
    print(json.dumps({"benchmark": "cfpb_doctype", "narratives": len(texts), "classes": len(set(labels)),
                      "folds": args.folds, "labels": "raw" if args.raw_labels else "2017 renames mapped"}))
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    for name, model in (("paperless_baseline", paperless_baseline()),
                        ("casework_model", build_pipeline(n_examples=len(texts)))):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.filterwarnings("ignore", message="The least populated class")
            predicted = cross_val_predict(model, np.array(texts, dtype=object), y, cv=cv, n_jobs=args.jobs)
        print(json.dumps({"model": name, "macro_f1": round(float(f1_score(y, predicted, average="macro")), 4),
                          "accuracy": round(float(np.mean(predicted == y)), 4),
                          "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
