"""Where a document's e-invoice files live in GridFS: ids fixed by the document's DOCX (which a document keeps
when its mailing is regrouped into sent / not sent), so merge writes the XML, render-pdf the Factur-X PDF, and
dispatch finds both without another service's collections."""

from publipost_storage import derived_blob_id


def cii_blob_id(docx_blob_id: str) -> str:
    return derived_blob_id("einvoice-cii", docx_blob_id)


def ubl_blob_id(docx_blob_id: str) -> str:
    return derived_blob_id("einvoice-ubl", docx_blob_id)


def facturx_blob_id(docx_blob_id: str) -> str:
    return derived_blob_id("einvoice-facturx", docx_blob_id)
