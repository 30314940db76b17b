"""Issue 11.3's "noise, for spam": a spam verdict that a mail filter on the way in wrote into the
headers (SpamAssassin, rspamd, Microsoft 365 / Exchange Online Protection, Barracuda) sends mail from
an unknown sender to noise instead of opening a case for a prospect; a "no" verdict changes nothing,
and a known customer's mail is never dropped for a verdict (it stays in the evidence).

Real bytes through the real extractor, classify and file stages on a real store; one of the mails
is a real scam from the shared corpus whose receiving server marked it ``X-Spam-Status: Yes``."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from casestore.customers import upsert_customer
from classify.matcher import Matcher
from ingest.extract.email_flags import spam_verdict
from ingest.messages import ClassifiedItem
from ingest.pipeline import ClassifyStage, FileStage
from tests.classify.mailroom import Expected, MailItem, extract_item
from tests.classify.mailroom_render import email_bytes

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "email"
OFFER = ("Dear friend,\n\nYou have been chosen to receive USD 4,500,000.00 in unclaimed funds. Reply with your "
         "full name, bank account and a copy of your passport to claim the transfer today.\n\nMr. James Okon")

# As the filters write them (values shortened from real messages).
SPAM = {
    "spamassassin": b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=15.3 required=5.0 tests=ADVANCE_FEE_4_NEW,\r\n"
                    b"\tFREEMAIL_FROM,LOTS_OF_MONEY autolearn=spam version=3.4.6\r\n",
    "spamassassin status only": b"X-Spam-Status: Yes, score=7.1 required=5.0\r\n",
    "rspamd": b"X-Spam: Yes\r\nX-Rspamd-Action: add header\r\n",
    "rspamd action": b"X-Rspamd-Action: rewrite subject\r\n",
    "exchange scl": b"X-MS-Exchange-Organization-SCL: 9\r\n",
    "exchange online protection": b"X-Forefront-Antispam-Report: CIP:203.0.113.9;CTRY:NG;LANG:en;SCL:5;SRV:;\r\n"
                                  b" IPV:NLI;SFV:SPM;H:mail.example;PTR:InfoDomainNonexistent;CAT:SPM;\r\n",
    "barracuda": b"X-Barracuda-Spam-Status: Yes, SCORE=8.20 using global scores of TAG_LEVEL=3.5\r\n",
}
NOT_SPAM = {
    "spamassassin no": b"X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-1.9 required=5.0 tests=BAYES_00\r\n",
    "rspamd no action": b"X-Spam: No\r\nX-Rspamd-Action: no action\r\n",
    "exchange low scl": b"X-MS-Exchange-Organization-SCL: 1\r\n",
    "exchange bypassed": b"X-MS-Exchange-Organization-SCL: -1\r\n",
    "eop not spam": b"X-Forefront-Antispam-Report: CIP:198.51.100.7;CTRY:GB;LANG:en;SCL:1;SFV:NSPM;CAT:NONE;\r\n",
    "a mention of SFV:SPM inside another value": b"X-Note: see SFV:SPMX docs\r\n",
    "filter ran, no verdict": b"X-Spam: undefined\r\nX-Spam-Processed: mail.example, Fri, 09 Jun 2017\r\n",
}


def _mail(name: str, *, sender: str, body: str, headers: bytes = b"") -> MailItem:
    data, _ = email_bytes(sender=sender, subject="Urgent business transfer", body=body)
    return MailItem(name, "test", "email", headers + data, f"{name}.eml", "message/rfc822", Expected("?"))


def _run(sessions: sessionmaker[Session], batch: list[MailItem], tmp: Path) -> list[ClassifiedItem]:
    extracted = [extract_item(i, tmp / "blobs") for i in batch]
    classified = [msg for _, _, msg in ClassifyStage(matcher=Matcher(), sessions=sessions).handle_batch(extracted)]
    FileStage(sessions=sessions).handle_batch(classified)  # type: ignore[arg-type]
    return classified  # type: ignore[return-value]


@pytest.mark.parametrize("headers", SPAM.values(), ids=SPAM.keys())
def test_each_filters_spam_verdict_is_read(headers: bytes) -> None:
    verdict = spam_verdict(message_from_bytes(headers + b"Subject: x\r\n\r\nbody\r\n"))
    assert verdict is not None and verdict.split(":", 1)[0].lower() in headers.decode().lower()


@pytest.mark.parametrize("headers", NOT_SPAM.values(), ids=NOT_SPAM.keys())
def test_a_clean_or_missing_verdict_is_not_spam(headers: bytes) -> None:
    assert spam_verdict(message_from_bytes(headers + b"Subject: x\r\n\r\nbody\r\n")) is None


def test_flagged_mail_from_strangers_is_noise_and_clean_mail_still_opens_cases(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    flagged = [_mail(f"spam{i}", sender=f"James Okon <j.okon{i}@freemail.example>", body=OFFER, headers=h)
               for i, h in enumerate(SPAM.values())]
    clean = [_mail(f"ham{i}", sender=f"Ruth Bell <ruth.bell{i}@web.example>",
                   body="Hello,\n\nI would like to complain about my bill, which doubled this month.\n\nRuth Bell",
                   headers=h)
             for i, h in enumerate(NOT_SPAM.values())]
    classified = _run(sessions, flagged + clean, tmp_path)
    for item in classified[:len(flagged)]:
        assert item.decision.outcome == "noise", item.decision.reason
        assert "spam" in item.decision.reason and item.decision.evidence["spam_verdict"]
    assert [c.decision.outcome for c in classified[len(flagged):]] == ["new_case"] * len(clean)


def test_a_known_customers_mail_is_not_dropped_for_a_verdict(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session, session.begin():
        upsert_customer(session, customer_id="C-SPAMTEST", name="Ruth Bell", email="ruth.bell@web.example")
    item = _run(sessions, [_mail("known", sender="Ruth Bell <ruth.bell@web.example>", headers=SPAM["rspamd"],
                                 body="Hello, please change my address to 4 Mill Lane.\n\nRuth Bell")], tmp_path)[0]
    assert item.decision.outcome == "new_case" and item.decision.customer_id == "C-SPAMTEST", item.decision.reason
    assert item.decision.evidence["spam_verdict"] == "X-Spam: Yes"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_a_real_scam_marked_by_its_receiving_server_is_noise(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    data = (CORPUS / "mikel__western_union_scam_empty_group.eml").read_bytes()
    item = _run(sessions, [MailItem("wu", "corpus", "email", data, "wu.eml", "message/rfc822", Expected("?"))],
                tmp_path)[0]
    assert item.decision.outcome == "noise", item.decision.reason
    assert item.decision.evidence["spam_verdict"] == "X-Spam-Status: Yes"
