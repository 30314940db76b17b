"""A content spam check by SpamAssassin's daemon (spamd), for mail that would open a case for a
stranger (``CASEWORK_SPAM__SPAMD=host:port``; off when empty).

Mail a filter already judged on the way in carries its verdict in the headers
(``ingest.extract.email_flags.spam_verdict``); mail fetched straight from a mailbox often carries
none.  Asking spamd about every item would cost ~0.2-1.5 s each, so the classify stage asks only about
the mail it is about to turn into a new case for someone unknown (a prospect): a known customer's mail
is never dropped for a score, and replies, triage and noise do not need one.

spamd is spoken to through aiospamc (the SPAMC protocol's maintained client); the checks of one batch
run concurrently, at most ``concurrency`` at a time.  When spamd cannot be reached or times out, the
item keeps its decision (fail open: a filter outage must not stop intake) and the evidence says the
check was not made; the log says so once per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiospamc
from aiospamc.exceptions import AIOSpamcConnectionFailed, ClientException, TimeoutException

from ingest.blobs import BlobStore
from ingest.messages import ExtractedItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpamResult:
    """What spamd said about one item: ``verdict`` is set when it is spam (for the evidence)."""

    verdict: str | None
    score: float | None = None
    error: str | None = None


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``), port 783 when left out; ValueError says what is wrong."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or "]" in port:
        host, port = address.strip(), "783"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"spamd address {address!r}: expected host:port, e.g. 127.0.0.1:783")
    return host, int(port)


class SpamdCheck:
    """Scores raw mail with spamd; ``check`` takes the items of one batch and returns one result each."""

    def __init__(self, *, address: str, blobs: BlobStore, timeout_s: float = 10.0, min_score: float | None = None,
                 max_bytes: int = 512 * 1024, concurrency: int = 4) -> None:
        self.host, self.port = parse_address(address)
        self.blobs = blobs
        self.timeout_s = timeout_s
        self.min_score = min_score
        self.max_bytes = max_bytes
        self.concurrency = max(1, concurrency)

    def check(self, items: Sequence[ExtractedItem]) -> list[SpamResult]:
        if not items:
            return []
        results = asyncio.run(self._check_all(items))
        failed = [r.error for r in results if r.error]
        if failed:
            log.warning("spamd at %s:%s did not answer for %d of %d items (%s); they keep their decision",
                        self.host, self.port, len(failed), len(items), failed[0])
        return results

    async def _check_all(self, items: Sequence[ExtractedItem]) -> list[SpamResult]:
        turn = asyncio.Semaphore(self.concurrency)

        async def one(item: ExtractedItem) -> SpamResult:
            async with turn:
                return await self._check_one(item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def _check_one(self, item: ExtractedItem) -> SpamResult:
        # spamc's own default: larger mail is not scored (spam is small; a 20 MB scan is not spam)
        if item.size > self.max_bytes:
            return SpamResult(verdict=None)
        data = self.blobs.read(item.blob_sha256)
        try:
            response = await aiospamc.symbols(data, host=self.host, port=self.port,
                                              timeout=aiospamc.Timeout(total=self.timeout_s))
        except (AIOSpamcConnectionFailed, TimeoutException, ClientException, OSError) as exc:
            return SpamResult(verdict=None, error=f"{type(exc).__name__}: {exc}"[:200])
        spam = response.headers.spam
        if spam is None:
            return SpamResult(verdict=None, error="spamd answered without a Spam header")
        threshold = self.min_score if self.min_score is not None else spam.threshold
        is_spam = spam.score >= threshold if self.min_score is not None else bool(spam.value)
        if not is_spam:
            return SpamResult(verdict=None, score=spam.score)
        rules = bytes(response.body).decode("ascii", "replace").strip().split(",")
        shown = ",".join(r for r in rules[:8] if r)
        return SpamResult(verdict=f"SpamAssassin (spamd): score {spam.score:g} of {threshold:g}"
                                  + (f"; {shown}" if shown else ""), score=spam.score)
