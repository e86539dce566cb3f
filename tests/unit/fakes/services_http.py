"""The services' HTTP APIs as the `publipost` command sees them, answered from a table (httpx.MockTransport):
for the command's unit tests only; tests/integration/test_cli.py runs it against the real services."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from publipost.app import app
from publipost.profile import CredentialStore, Profile
from publipost.session import Session
from rich.console import Console
from typer.testing import CliRunner

PROFILE = Profile.from_env({})  # the local stack's ports
Answer = Any | httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeServices:
    """`on("GET", PROFILE.merge_url + "/mailings/m1", view, view2)`: each call takes the next answer, the last
    one repeating. Every request is kept, in order."""

    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, url: str, *answers: Answer) -> None:
        self.answers[(method, url)] = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        key = (request.method, str(request.url.copy_with(query=None)))
        if key not in self.answers:
            return httpx.Response(404, json={"detail": f"no route {key} in the fake"})
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            return answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def sent(self, method: str, url: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and str(r.url.copy_with(query=None)) == url]


@dataclass
class Terminal:
    """The command run as a person would, against the fake services, its configuration in `config`."""

    config: Path
    services: FakeServices = field(default_factory=FakeServices)
    env_credential: str | None = None

    def session(self) -> Session:
        return Session(
            PROFILE,
            CredentialStore(self.config),
            self.env_credential,
            httpx.MockTransport(self.services),
            poll_s=0,
            out=Console(width=200),
        )

    def run(self, *args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(app, list(args), obj=self.session(), input=input)


def form_fields(request: httpx.Request) -> dict[str, Any]:
    """A multipart/form-data body as {name: text or (filename, bytes)}."""
    content_type = request.headers["content-type"]
    boundary = content_type.split("boundary=", 1)[1].encode()
    fields: dict[str, Any] = {}
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk[2:-2].partition(b"\r\n\r\n")  # each part sits between CRLFs
        disposition = next(
            line for line in head.decode().split("\r\n") if line.lower().startswith("content-disposition")
        )
        params = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:])
        name = params["name"].strip('"')
        fields[name] = (params["filename"].strip('"'), body) if "filename" in params else body.decode()
    return fields


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content)
