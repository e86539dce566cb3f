"""The template service: DOCX templates stored in GridFS, and the fields they use."""
