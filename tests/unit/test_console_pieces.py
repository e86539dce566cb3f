"""The web console's pieces without a browser: its labels in two languages, its sealed session cookie, the
PKCE pair it makes for the issuer, and the rules its screens follow."""

import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from publipost_auth.pkce import new_verifier, s256_challenge, verifier_matches
from publipost_console.catalog import MESSAGES, Catalog, choose_language
from publipost_console.screens import NothingChosen, chosen_documents, mailing_progress, safe_next
from publipost_console.session import LoginState, Seal, Session

TEMPLATES = Path(__file__).parents[2] / "services" / "console" / "publipost_console" / "templates"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"),
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,de;q=0.9,fr;q=0.5", "fr"),  # German is not offered: the next wanted language we have
        ("fr;q=0, en;q=0.1", "en"),  # q=0: not wanted
        ("en;q=0.5, fr;q=0.5", "en"),  # equal weights: the browser's first
        ("", "en"),
        (None, "en"),
        ("fr;q=nonsense", "en"),
    ],
)
def test_the_browsers_language_is_chosen_among_french_and_english(header, language):
    assert choose_language(header) == language


def test_every_label_exists_in_both_languages_with_the_same_placeholders():
    placeholders = re.compile(r"\{(\w+)\}")
    assert set(MESSAGES["en"]) == set(MESSAGES["fr"])
    for key, english in MESSAGES["en"].items():
        assert set(placeholders.findall(english)) == set(placeholders.findall(MESSAGES["fr"][key])), key


def test_every_label_a_page_names_is_in_the_catalog():
    named = {
        key
        for page in TEMPLATES.glob("*.html")
        for key in re.findall(r"""\bt\(["']([\w.]+)["'][,)]""", page.read_text())
    }
    assert named and named <= set(MESSAGES["en"])
    # Labels named by a state the services give.
    statuses = ["rendering", "converting", "pending_validation", "ready", "failed", "rejected", "replaced"]
    assert {f"status.{s}" for s in statuses} <= set(MESSAGES["en"])
    assert {f"email_state.{s}" for s in ("never_sent", "sent", "not_sent")} <= set(MESSAGES["en"])
    dispatches = ("fanning_out", "sending", "paused", "completed", "refused")
    assert {f"dispatch.status.{s}" for s in dispatches} <= set(MESSAGES["en"])


def test_a_label_is_filled_in_the_persons_language():
    assert Catalog.for_request("fr-FR").__call__("mailings.count", total=3) == "3 publipostages"
    assert Catalog("en")("progress.of", done=2, total=5) == "2 of 5"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


KEY = Fernet.generate_key().decode()


def test_a_session_opens_until_its_token_expires_and_never_with_another_key_or_altered():
    clock = Clock(1_000_000)
    seal = Seal(KEY, max_age_s=8 * 3600, clock=clock)
    session = Session("the-token", expires_at=1_000_900, name="operator", email="op@example.test", roles=["operator"])
    cookie = seal.seal(session)
    assert "the-token" not in cookie  # encrypted, not only signed
    assert seal.session(cookie) == session
    assert Seal(Fernet.generate_key().decode(), 3600, clock).session(cookie) is None
    assert seal.session(cookie[:-4] + "AAAA") is None
    assert seal.session(None) is None and seal.session("garbage") is None
    clock.now = 1_000_900  # the token's exp
    assert seal.session(cookie) is None


def test_a_session_ends_at_its_maximum_age_even_with_a_longer_token():
    clock = Clock(1_000_000)
    seal = Seal(KEY, max_age_s=60, clock=clock)
    cookie = seal.seal(Session("t", expires_at=2_000_000, name="n"))
    clock.now += 61
    assert seal.session(cookie) is None


def test_a_sign_in_under_way_is_kept_ten_minutes():
    clock = Clock(1_000_000)
    seal = Seal(KEY, max_age_s=3600, clock=clock)
    state = LoginState("s", new_verifier(), "http://127.0.0.1:8108/callback", "/mailings")
    cookie = seal.seal(state)
    assert seal.login_state(cookie) == state
    clock.now += 601
    assert seal.login_state(cookie) is None


def test_pkce_pairs_match_and_the_rfc_example_holds():
    # RFC 7636, appendix B.
    assert (
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifier = new_verifier()
    assert 43 <= len(verifier) <= 128
    assert verifier_matches(verifier, s256_challenge(verifier))
    assert not verifier_matches(new_verifier(), s256_challenge(verifier))
    assert not verifier_matches(None, s256_challenge(verifier))
    assert not verifier_matches("short", s256_challenge("short"))  # under 43 characters: malformed


def test_a_send_takes_all_documents_unless_some_are_unticked():
    offered = ["d1", "d2", "d3"]
    assert chosen_documents(offered, ["d1", "d2", "d3"]) is None
    assert chosen_documents(offered, ["d3", "d1"]) == ["d1", "d3"]
    assert chosen_documents([], []) is None  # too many to offer: all of them
    with pytest.raises(NothingChosen):
        chosen_documents(offered, [])


def test_progress_counts_records_then_pdfs():
    rendering = {"status": "rendering", "rendered": 3, "failed": 1, "expected": 10, "documents": 4}
    converting = {"status": "converting", "rendered": 10, "failed": 0, "expected": 10, "documents": 10, "converted": 7}
    assert (mailing_progress(rendering).done, mailing_progress(rendering).total) == (4, 10)
    assert (mailing_progress(converting).done, mailing_progress(converting).total) == (7, 10)
    assert mailing_progress({**converting, "status": "ready"}) is None


@pytest.mark.parametrize("given", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "mailings", None, ""])
def test_a_sign_in_returns_only_to_a_page_of_the_console(given):
    assert safe_next(given) == "/mailings"


def test_a_sign_in_returns_to_the_page_asked_for():
    assert safe_next("/mailings/m1?after=20") == "/mailings/m1?after=20"
