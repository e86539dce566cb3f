"""A domain's refusal is answered by its kind, in one place for every service (publipost_http): NotFound 404,
Conflict 409, Invalid 422, its words as the detail."""

import httpx
from fastapi import FastAPI
from publipost_http.errors import refusal_answer
from publipost_refusals import Conflict, Invalid, NotFound, Refusal


class NoSuchMailing(NotFound):
    pass


async def test_each_kind_of_refusal_answers_its_status_with_its_words():
    app = FastAPI()
    app.add_exception_handler(Refusal, refusal_answer)
    refusals = {
        "missing": NoSuchMailing("mailing_id: no mailing 'm-1' for this tenant"),
        "busy": Conflict("mailing 'm-1' is converting, not ready to send"),
        "wrong": Invalid("to: 'x' is not a valid e-mail address"),
    }

    @app.get("/{what}")
    async def refuse(what: str) -> None:
        raise refusals[what]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
        answers = {what: await http.get(f"/{what}") for what in refusals}
    assert {what: a.status_code for what, a in answers.items()} == {"missing": 404, "busy": 409, "wrong": 422}
    assert answers["missing"].json() == {"detail": "mailing_id: no mailing 'm-1' for this tenant"}
