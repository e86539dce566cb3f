"""The services' HTTP APIs as the command calls them: JSON in and out, the stored credential on every call, and
every refusal turned into one sentence naming the field the service named."""

from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 30.0


class CommandFailed(Exception):
    """An expected failure (a refusal, a service out of reach, bad input): said in one message, exit status 1."""


class ApiError(CommandFailed):
    def __init__(self, service: str, status: int, detail: str) -> None:
        self.service = service
        self.status = status
        self.detail = detail
        hint = " (log in again: publipost login)" if status == 401 else ""
        super().__init__(f"{service} answered {status}: {detail}{hint}")


def detail_text(detail: Any) -> str:
    """A service's `detail`: a sentence, or FastAPI's list of problems, each said with the field it is about
    (`custom_fields.signatory: field required`)."""
    if isinstance(detail, list):
        return "; ".join(_problem(item) for item in detail)
    return str(detail)


def _problem(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = [str(part) for part in item.get("loc", [])]
    if where and where[0] in ("body", "query", "path", "header"):
        where = where[1:]
    message = str(item.get("msg", item))
    return f"{'.'.join(where)}: {message}" if where else message


def _refusal(service: str, response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = detail_text(body["detail"])
    elif isinstance(body, dict) and "error" in body:  # an OAuth token endpoint's (RFC 6749 §5.2)
        detail = f"{body.get('error_description') or body['error']} ({body['error']})"
    else:
        detail = response.text.strip() or response.reason_phrase
    return ApiError(service, response.status_code, detail)


def filename_of(response: httpx.Response, fallback: str) -> str:
    """The file name the service gave (Content-Disposition, RFC 6266 and 5987), as a bare name: a name holding
    a path never writes outside the folder asked for."""
    header = response.headers.get("content-disposition")
    name = None
    if header:
        message = Message()
        message["content-disposition"] = header
        name = message.get_filename()
    return Path(name).name if name else fallback


class ServiceClient:
    """One service's API for one caller."""

    def __init__(
        self, name: str, base_url: str, credential: str | None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT_S, transport=transport)

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            variable = f"PUBLIPOST_{self.name.upper()}_URL"
            raise CommandFailed(
                f"cannot reach {self.name} at {self.base_url}: {exc or type(exc).__name__} "
                f"(is the stack up? {variable} says where it is)"
            ) from exc

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The JSON answer (None for an empty one); a refusal raises ApiError."""
        with self._reaching():
            response = self._http.request(method, path, **options)
        if response.is_error:
            raise _refusal(self.name, response)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json=body)

    def download(self, path: str, folder: Path, target: Path | None, fallback: str, **params: Any) -> Path:
        """A file streamed to `target`, or into `folder` under the name the service gives it."""
        with self._reaching(), self._http.stream("GET", path, params=params) as response:
            if response.is_error:
                response.read()
                raise _refusal(self.name, response)
            written = target or folder / filename_of(response, fallback)
            # Under its own name once whole: a download cut off leaves no file that looks complete.
            partial = written.with_name(f".{written.name}.part")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            partial.rename(written)
        return written
