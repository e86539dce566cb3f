"""recipient-directory: recipients by customer number, and the address a document goes to."""
