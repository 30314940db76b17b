"""Triage resolution in the real store (labels for retraining) and the trainable doc-type model."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.metrics import f1_score
from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import cases
from casestore.access import OPERATOR
from casestore.customers import upsert_customer
from casestore.errors import Conflict, InvalidInput
from casestore.items import NewDocument, file_item
from casestore.lookup import StoreLookup
from casestore.models import Document, Item
from casestore.triage import MatchLabel, doc_type_examples, resolve_triage
from classify.doctype import DocTypeClassifier
from classify.doctype_model import DocTypeModel, ModelError, ModelParams, fit_class_bias
from classify.matcher import Matcher, MatchInput
from tests.casestore.factories import new_item


def _triaged(session: Session, key: str, text: str) -> str:
    item = new_item(key, message_id=f"<{key}@x>")
    file_item(session, item=item, documents=[NewDocument(0, "body", "b", None, "text/plain", None, text)],
              outcome="triage", case_ref=None, new_case=None, doc_type="general_enquiry",
              decision={"reason": "uncertain", "candidates": ["LEG-1"]}, actor="pipeline")
    return item.item_id


def test_resolve_triage_attach_moves_documents_and_writes_label(session: Session) -> None:
    upsert_customer(session, customer_id="C-1", name="Jane Doe", email="jane@example.com")
    cases.upsert_case(session, ref="LEG-1", customer_id="C-1", case_type="claim")
    item_id = _triaged(session, "t1", "my boiler broke, I want to claim")
    res = resolve_triage(session, viewer=OPERATOR, item_id=item_id, action="attach", case_ref="LEG-1",
                         actor="agent1", reason="customer phoned", doc_type="claim")
    assert (res.outcome, res.case_ref, res.doc_type) == ("attached", "LEG-1", "claim")
    case = cases.get_case(session, ref="LEG-1")
    assert session.scalars(select(Document.case_id).where(Document.item_id == item_id)).all() == [case.id]
    label = session.scalars(select(MatchLabel)).one()
    assert (label.action, label.customer_id, label.predicted_outcome, label.candidates) == (
        "attach", "C-1", "triage", ["LEG-1"])
    folder = cases.case_folder(session, ref="LEG-1")
    assert [a["action"] for a in folder["audit"]][-1] == "triage.resolved"
    assert doc_type_examples(session) == [("my boiler broke, I want to claim", "claim")]
    assert StoreLookup(session).case_by_message_id("t1@x") is not None  # threads follow the move
    with pytest.raises(Conflict):
        resolve_triage(session, viewer=OPERATOR, item_id=item_id, action="noise", actor="agent1", reason="again")


def test_resolve_triage_new_case_and_noise(session: Session) -> None:
    a = _triaged(session, "t2", "hello")
    b = _triaged(session, "t3", "spam")
    res = resolve_triage(session, viewer=OPERATOR, item_id=a, action="new_case", actor="agent", reason="new request",
                         case_type="complaint")
    assert res.outcome == "new_case" and res.case_ref and res.case_ref.startswith("CW-")
    noise = resolve_triage(session, viewer=OPERATOR, item_id=b, action="noise", actor="agent", reason="spam")
    assert noise.case_ref is None
    assert session.get(Item, b).outcome == "noise"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput):
        resolve_triage(session, viewer=OPERATOR, item_id=b, action="attach", actor="agent", reason="no ref")


EXAMPLES = [
    ("I want to complain about the rude staff", "complaint"),
    ("this service is appalling, formal complaint", "complaint"),
    ("my complaint was ignored again", "complaint"), ("claim for my broken window", "claim"),
    ("I wish to claim for storm damage to the roof", "claim"), ("claim for stolen bicycle", "claim"),
    ("please cancel my policy", "cancellation"), ("I want to cancel the contract now", "cancellation"),
    ("cancel my direct debit and membership", "cancellation"),
]


def test_model_trains_saves_loads_and_retrains_from_corrections(tmp_path: Path) -> None:
    model = DocTypeModel.train(EXAMPLES)
    assert model.predict("I would like to claim for water damage")[0] == "claim"
    path = tmp_path / "models" / "doctype.joblib"
    model.save(path)
    loaded = DocTypeModel.load(path)
    assert loaded.labels == model.labels
    text = "the parcel never arrived, where is it"
    retrained = loaded.retrain([(text, "general_enquiry")] * 3)
    assert "general_enquiry" in retrained.labels and retrained.predict(text)[0] == "general_enquiry"
    with pytest.raises(ModelError):
        DocTypeModel.train([("only one", "complaint")])
    with pytest.raises(ModelError):
        DocTypeModel.load(tmp_path / "missing.joblib")


def test_matcher_uses_a_confident_model(session: Session) -> None:
    matcher = Matcher(classifier=DocTypeClassifier(model=DocTypeModel.train(EXAMPLES), min_model_score=0.3))
    result = matcher.decide(MatchInput(channel="email", subject="storm", text="claim for the roof damage",
                                       sender_email="new@example.net"), StoreLookup(session))
    assert result.outcome == "new_case" and result.doc_type == "claim"
    assert result.evidence["doc_type"]["method"] == "model"


def test_class_bias_lifts_macro_f1_where_a_small_class_is_under_predicted() -> None:
    rng = np.random.default_rng(0)
    classes = np.array(["big", "mid", "small"])
    y = np.array(["big"] * 80 + ["mid"] * 40 + ["small"] * 10)
    scores = rng.normal(0, 0.3, (len(y), 3))
    scores[np.arange(len(y)), [list(classes).index(c) for c in y]] += 1.0
    scores[:, 2] -= 1.2  # the small class is rarely predicted
    bias = fit_class_bias(y, scores, classes)
    before = f1_score(y, classes[scores.argmax(1)], average="macro")
    after = f1_score(y, classes[(scores + bias).argmax(1)], average="macro")
    assert bias[2] > 0.5 and after > before + 0.1


def test_a_model_learns_class_offsets_and_an_old_model_without_them_still_loads(tmp_path: Path) -> None:
    examples = EXAMPLES * 2 + [(f"where is my parcel number {i}", "general_enquiry") for i in range(6)]
    model = DocTypeModel.train(examples)
    assert model.bias is not None and len(model.bias) == len(model.labels)
    assert DocTypeModel.train(examples, params=ModelParams(tune_bias=False)).bias is None
    old = DocTypeModel.train(EXAMPLES, params=ModelParams(tune_bias=False))
    del old.__dict__["bias"]  # as unpickled from a format-1 file
    path = tmp_path / "old.joblib"
    joblib.dump({"format": 1, "sklearn": sklearn.__version__, "model": old}, path)
    loaded = DocTypeModel.load(path)
    assert loaded.predict("please cancel my membership")[0] == "cancellation"
    assert loaded.predict_many(["claim for my stolen bicycle"]) == ["claim"]


def test_a_closed_case_quoted_by_its_customer_is_attached_unless_configured_to_triage(session: Session) -> None:
    """Attached, the case's work reopens it (within its reopen window) or opens a linked case
    (tests/casestore/work/test_filing_work.py); ``attach_to_closed=False`` sends it to triage."""
    from classify.match_types import MatchConfig

    upsert_customer(session, customer_id="C9", name="Jane Doe", email="jane9@example.com")
    cases.upsert_case(session, ref="CM-2025-000123", customer_id="C9", case_type="complaint", status="closed")
    item = MatchInput(channel="email", subject="Re: CM-2025-000123", text="The refund never arrived.",
                      sender_email="jane9@example.com")
    attached = Matcher().decide(item, StoreLookup(session))
    assert (attached.outcome, attached.case_ref) == ("attached", "CM-2025-000123")
    triaged = Matcher(MatchConfig(attach_to_closed=False)).decide(item, StoreLookup(session))
    assert (triaged.outcome, triaged.candidates) == ("triage", ["CM-2025-000123"])
