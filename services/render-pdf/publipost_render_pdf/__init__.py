"""render-pdf: DOCX to PDF through long-lived LibreOffice workers."""
