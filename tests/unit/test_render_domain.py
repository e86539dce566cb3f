"""render-pdf's rules: which documents are laid out together, the page map, quotas and backends."""

from datetime import UTC, datetime, timedelta

import pytest
from publipost_render_pdf.domain import (
    Backend,
    PageMapMismatch,
    TenantConversionSettings,
    batches,
    choose_backend,
    conversion_year,
    page_map,
    pdf_blob_id,
    queue_wait_s,
    quota_grant,
    quota_refusal,
)
from publipost_storage import Entities


def test_documents_sharing_styles_go_together_in_chunk_order_and_the_others_alone():
    keys = ["letter", "letter", None, "invoice", "letter", "invoice"]
    assert batches(keys, max_size=50) == [[0, 1, 4], [2], [3, 5]]


def test_a_batch_holds_at_most_max_size_documents():
    assert batches(["k"] * 5, max_size=2) == [[0, 1], [2, 3], [4]]


def test_each_document_gets_the_pages_from_its_start_to_the_next_one_s():
    assert page_map([0, 1, 4, 5], total_pages=7) == [range(1), range(1, 4), range(4, 5), range(5, 7)]


@pytest.mark.parametrize(
    ("starts", "total", "why"),
    [
        ([0, None, 2], 3, "no start page found for documents [1]"),
        ([1, 2], 3, "starts on page 2"),
        ([0, 2, 2], 3, "document 1 would span pages 3 to 2"),
        ([0, 3], 3, "document 1 would span pages 4 to 3"),
        ([], 0, "no documents"),
    ],
)
def test_a_page_map_that_would_hand_a_page_to_the_wrong_recipient_is_refused(starts, total, why):
    with pytest.raises(PageMapMismatch, match=why.replace("[", r"\[").replace("]", r"\]")):
        page_map(starts, total)


def test_a_redelivered_document_finds_the_same_pdf_id():
    assert pdf_blob_id("doc-1") == pdf_blob_id("doc-1") != pdf_blob_id("doc-2")


def test_the_quota_grants_what_is_left_and_nothing_past_it():
    assert quota_grant(used=0, limit=None, wanted=20) == 20
    assert quota_grant(used=95, limit=100, wanted=20) == 5
    assert quota_grant(used=100, limit=100, wanted=20) == 0
    assert quota_grant(used=120, limit=100, wanted=1) == 0  # a limit lowered below the usage
    assert quota_refusal("acme", 100) == "conversion quota of 100 per year reached for tenant acme"


def stored_settings(**fields):
    return Entities(TenantConversionSettings).load({"_id": "acme", **fields})


def test_a_tenant_s_own_limit_wins_even_when_it_is_unlimited():
    assert stored_settings().limit(default=1000) == 1000
    assert stored_settings(yearly_limit=50).limit(default=1000) == 50
    assert stored_settings(yearly_limit=None).limit(default=1000) is None


def test_a_tenant_s_stored_backend_is_its_own_and_one_never_set_is_the_service_s():
    own = stored_settings(yearly_limit=5, backend="gotenberg", gotenberg_url="http://g:3000")
    assert own.has_own_backend
    assert own.backend_choice("libreoffice", None) == choose_backend("gotenberg", "http://g:3000", "libreoffice", None)
    # stored before tenants had backends
    assert not stored_settings(yearly_limit=5).has_own_backend
    assert stored_settings(yearly_limit=5).backend_choice("libreoffice", None).backend is Backend.LIBREOFFICE


def test_a_tenant_s_own_backend_wins_and_only_the_local_one_is_bound_by_the_quota():
    default = choose_backend(None, None, "libreoffice", None)
    own = choose_backend("gotenberg", "http://g:3000", "libreoffice", None)
    service_wide = choose_backend(None, None, "gotenberg", "http://shared:3000")

    assert (default.backend, default.external) == (Backend.LIBREOFFICE, False)
    assert (own.backend, own.gotenberg_url, own.external) == (Backend.GOTENBERG, "http://g:3000", True)
    assert (service_wide.gotenberg_url, service_wide.external) == ("http://shared:3000", True)


def test_a_chunk_counts_in_the_year_it_was_asked_for_and_its_wait_is_never_negative():
    asked = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert conversion_year(asked) == 2025
    assert queue_wait_s(asked, asked + timedelta(seconds=2)) == 2.0
    assert queue_wait_s(asked, asked - timedelta(seconds=1)) == 0.0
