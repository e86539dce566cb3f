"""Where a document's e-invoice files live in GridFS: ids fixed by the document, so merge writes the XML,
render-pdf the Factur-X PDF, and dispatch finds both without another service's collections."""

from publipost_storage import derived_blob_id


def cii_blob_id(document_id: str) -> str:
    return derived_blob_id("einvoice-cii", document_id)


def ubl_blob_id(document_id: str) -> str:
    return derived_blob_id("einvoice-ubl", document_id)


def facturx_blob_id(document_id: str) -> str:
    return derived_blob_id("einvoice-facturx", document_id)
