"""The document viewer: ``/documents/{id}`` (the original inline beside its extracted text),
``/documents/{id}/pages/{n}.png`` (a rendered page) and ``/documents/{id}/original`` (download).

Every one of these URLs checks the same access rule first: a document filed in a case the viewer
may not see answers 404 like one that does not exist.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.web import originals
from api.web.session_auth import Page, PageContext, PageError, runtime_of
from api.web.templating import FILE_CSP, render, security_headers
from api.web.visibility import may_see_item
from casestore.document_view import DocumentView, document_view
from casestore.errors import NotFound

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
_NOT_ASCII_NAME = re.compile(r"[^A-Za-z0-9._\- ()]+")


def _visible_document(request: Request, document_id: int, page: PageContext) -> DocumentView:
    with runtime_of(request).read_sessions() as session:
        try:
            view, case = document_view(session, document_id=document_id)
        except NotFound:
            view, case = None, None
        if view is None or not may_see_item(session, page.user, view.item_id, case):
            raise PageError(404, f"There is no document {document_id} (or it is not visible to your teams).")
    return view


def _original_sha(view: DocumentView) -> tuple[str | None, str]:
    """The bytes this document is a part of, and a file name for them: the part's own blob, or
    (an email's body, which has none) the whole item as received."""
    if view.blob_sha256:
        return view.blob_sha256, view.filename or view.item_filename or f"document-{view.document_id}"
    if view.part_index == 0 and view.item_blob_sha256:
        return view.item_blob_sha256, view.item_filename or f"item-{view.item_id}"
    return None, ""


@router.get("/documents/{document_id}")
def document_page(request: Request, document_id: int, page: Page) -> Response:
    view = _visible_document(request, document_id, page)
    rt = runtime_of(request)
    sha, filename = _original_sha(view)
    original = originals.describe(rt.blobs, sha)
    html_body = None
    if original.kind == "email" and sha is not None:
        try:
            html_body = originals.email_html(rt.blobs.read(sha))
        except Exception as exc:  # a broken message is shown by its extracted text instead
            log.warning("document %s: email HTML could not be prepared (%s)", document_id, type(exc).__name__)
    ocr = {k: v for k, v in view.fields.items() if k.startswith("ocr_")}
    return render(request, "document.html", {
        "doc": view, "original": original, "filename": filename, "email_html": html_body, "ocr": ocr,
        "pages": range(min(original.pages, originals.MAX_PAGES)), "max_pages": originals.MAX_PAGES,
        "nav": "cases",
    }, page=page)


@router.get("/documents/{document_id}/pages/{number}.png")
def page_image(request: Request, document_id: int, number: int, page: Page) -> Response:
    view = _visible_document(request, document_id, page)
    rt = runtime_of(request)
    sha, _ = _original_sha(view)
    original = originals.describe(rt.blobs, sha)
    if original.kind not in ("pdf", "image"):
        raise PageError(404, f"Document {document_id} has no pages to show as images.")
    try:
        png = originals.page_png(rt.blobs, original, number - 1)
    except IndexError:
        raise PageError(404, f"Document {document_id} has no page {number}.") from None
    response = Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
    return security_headers(response, FILE_CSP)


@router.get("/documents/{document_id}/original")
def download(request: Request, document_id: int, page: Page) -> Response:
    view = _visible_document(request, document_id, page)
    sha, filename = _original_sha(view)
    if sha is None:
        raise PageError(404, f"Document {document_id} has no stored original; its text is all there is.")
    data = runtime_of(request).blobs.read(sha)
    name = filename.replace("/", "_").replace("\\", "_").strip() or f"document-{document_id}"
    ascii_name = _NOT_ASCII_NAME.sub("_", name)
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    response = Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": disposition, "Cache-Control": "private, no-store"})
    return security_headers(response, FILE_CSP)
