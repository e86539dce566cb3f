"""PDFs laid out as LibreOffice writes them, cut and joined object by object.

LibreOffice writes a plain PDF: one cross-reference table, one flat page tree,
named destinations in the catalog's /Dests. Pages of such PDFs are copied with
every object they use, as they are, renumbered, without parsing their content:
pypdf's page-by-page writer costs more than a millisecond a page, which is
LibreOffice's own time for a letter. render-pdf cuts a combined run into one PDF
per document; merge joins a mailing's PDFs into its print file. Anything not
plain raises `NotPlain`, and the caller goes through pypdf instead.
"""

from .plain import NotPlain, PdfAssembler, PlainPdf, join_pdfs

__all__ = ["NotPlain", "PdfAssembler", "PlainPdf", "join_pdfs"]
