"""HL7 C-CDA clinical documents (CCD, referral summaries): patient, document title and authoring organisation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ingest.extract.xml_paths import attr, clean, find, find_all, iso_date, local, namespace, text, texts

HL7_V3 = "urn:hl7-org:v3"
_NULL_NAMES = {"null", "nullflavor", "unknown", "unk"}  # exporters write these into name parts


def is_ccda(root: ET.Element) -> bool:
    return local(root.tag) == "ClinicalDocument" and namespace(root.tag) == HL7_V3


def _name_parts(name: ET.Element | None, part: str) -> list[str]:
    values = [clean("".join(e.itertext())) for e in find_all(name, part)]
    return [v for v in values if v and v.lower() not in _NULL_NAMES]


def _patient(root: ET.Element) -> dict[str, Any]:
    role = find(root, "recordTarget/patientRole")
    patient = find(role, "patient")
    name = find(patient, "name")
    given = _name_parts(name, "given")
    family = _name_parts(name, "family")
    full = " ".join(given + family) or (text(name) if name is not None and not list(name) else None)
    values = {
        "name": full,
        "given": given,
        "family": " ".join(family) or None,
        "birth_date": iso_date(attr(patient, "birthTime", "value")),
        "gender": attr(patient, "administrativeGenderCode", "code"),
        "ids": [
            v for v in (clean(e.get("extension")) for e in find_all(role, "id")) if v is not None
        ],
    }
    return {k: v for k, v in values.items() if v not in (None, [])}


def ccda_fields(root: ET.Element) -> dict[str, Any] | None:
    """Title, type code, date, patient and organisations of a C-CDA document; None if it is not one."""
    if not is_ccda(root):
        return None
    author_org = next(iter(texts(root, "author/assignedAuthor/representedOrganization/name")), None)
    custodian = text(root, "custodian/assignedCustodian/representedCustodianOrganization/name")
    legal = next(iter(texts(root, "legalAuthenticator/assignedEntity/representedOrganization/name")), None)
    return {
        "title": text(root, "title") or attr(root, "code", "displayName"),
        "document_code": attr(root, "code", "code"),
        "document_type": attr(root, "code", "displayName"),
        "effective_date": iso_date(attr(root, "effectiveTime", "value")),
        "patient": _patient(root),
        "author_organization": author_org,
        "custodian_organization": custodian,
        # who stands behind the document: the author's organisation, else the custodian, else the signer's
        "organization": author_org or custodian or legal,
        "authoring_device": text(root, "author/assignedAuthor/assignedAuthoringDevice/softwareName"),
    }
