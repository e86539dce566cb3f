"""What render-pdf asks of a conversion backend, whichever it is (local LibreOffice, Gotenberg)."""

from typing import Protocol


class ConversionFailed(Exception):
    """This input cannot be converted: the backend refused it, crashed on it, or took too long (`reason`)."""

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class ConverterUnavailable(Exception):
    """The backend cannot convert anything now: the message should be retried later, here or on another replica."""


class Converter(Protocol):
    name: str

    async def convert(self, docx: bytes, *, retry: bool = True, pdfa: bool = False) -> bytes:
        """The PDF of `docx`, its bookmarks exported as named destinations (a PDF/A-3b with `pdfa`).

        `retry`: after a crash or a hang, try once more on a fresh process. A
        combined chunk does not, since converting its documents one by one is
        the next step anyway and finds the culprit.
        """
        ...
