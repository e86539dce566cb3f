"""Records with every field of samples/letter.docx: what the demo, the benchmarks and the fault runs send."""

from typing import Any


def letter_record(n: int, *, record_id: str, document_number: str, email: str | None, digits: int = 5) -> dict[str, Any]:
    """Client `n`, with the record's own id, document number and address (None: not sendable by e-mail)."""
    return {
        "id": record_id,
        "customer_number": f"C{n:0{digits}d}",
        "document_number": document_number,
        "name": f"Client {n:0{digits}d} SARL",
        "email": email,
        "address": f"{n} avenue des Champs",
        "postal_code": "75008",
        "city": "Paris",
        "contract": f"CTR-{1000 + n}",
        "premium": 100 + n % 500,
        "tax": 20,
        "amount_due": 120 + n % 700,
        "branch": "Paris Nord",
    }
