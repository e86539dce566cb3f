"""E-mail template rules without I/O: legacy placeholders, known variables, default subjects."""

from datetime import UTC, datetime

import pytest
from publipost_refusals import NotFound
from publipost_storage import Entities
from publipost_template.domain import TemplateRejected
from publipost_template.email_templates import (
    DEFAULT_SUBJECTS,
    EmailContent,
    EmailTemplate,
    EmailTemplateDraft,
    EmailTemplateNotFound,
    allowed_variables,
    check_email_template,
)


def check(subject="", body_text="Hello", body_html=None, signature="", entity_type="client", template_type="standard"):
    return check_email_template(
        EmailContent(subject, body_text, body_html, signature), entity_type=entity_type, template_type=template_type
    )


def test_legacy_placeholders_are_saved_in_the_brace_form_in_text_and_html():
    checked = check(
        subject="Facture <NUMFACT>",
        body_text="<NOMSOC>: <NUMFACT> du <DATEFACT>",
        body_html="<b>&lt;NUMFACT&gt;</b> <NOMSOC>",
        signature="<NOMSOC>",
    )
    content = checked.content
    assert content.subject == "Facture {document_number}"
    assert content.body_text == "{client_name}: {document_number} du {date}"
    assert content.body_html == "<b>{document_number}</b> <NOMSOC>"  # in HTML, <NOMSOC> is a tag; escaped is text
    assert checked.variables == ["client_name", "date", "document_number"]


def test_an_empty_subject_is_the_document_types_default():
    assert check(template_type="due_notice").content.subject == DEFAULT_SUBJECTS["due_notice"]
    assert set(DEFAULT_SUBJECTS) == {"standard", "payment_reminder", "due_notice", "unpaid_premium_reminder"}


def test_document_variables_and_the_entitys_record_fields_are_allowed():
    assert allowed_variables("client")[:5] == [
        "document_name", "document_number", "date", "client_name", "customer_number"
    ]
    assert "premium" in allowed_variables("client")
    assert "supplier_number" not in allowed_variables("client")


def test_every_unknown_variable_is_refused_with_its_field():
    with pytest.raises(TemplateRejected) as refused:
        check(subject="{documentnumber}", body_text="{} <NUMCLI> {name.__class__}", signature="{x}")
    by_field = {p.field: p.context["names"] for p in refused.value.problems}
    assert by_field == {
        "subject": ["documentnumber"],
        "body_text": ["", "<NUMCLI>", "name.__class__"],
        "signature": ["x"],
    }


def test_an_unknown_entity_type_is_refused():
    with pytest.raises(TemplateRejected) as refused:
        check(entity_type="planet")
    assert refused.value.problems[0].field == "entity_type"


def draft(subject="", body_text="Hello <NOMSOC>"):
    return EmailTemplateDraft("Reminder", "payment_reminder", "client", EmailContent(subject, body_text, None, ""))


def test_an_e_mail_template_is_stored_checked():
    created = datetime(2026, 11, 1, tzinfo=UTC)
    template = EmailTemplate.checked(draft(), id="e-1", tenant_id="acme", created_at=created)
    assert template.subject == DEFAULT_SUBJECTS["payment_reminder"]
    assert template.body_text == "Hello {client_name}"
    assert template.variables == ["client_name", "document_number"]
    assert template.created_at == created and template.updated_at >= created
    with pytest.raises(TemplateRejected):
        EmailTemplate.checked(draft(body_text="{nope}"), id="e-1", tenant_id="acme", created_at=created)


def test_a_replaced_e_mail_template_keeps_its_id_tenant_and_creation():
    created = datetime(2026, 11, 1, tzinfo=UTC)
    template = EmailTemplate.checked(draft(), id="e-1", tenant_id="acme", created_at=created)
    replaced = template.replaced_by(draft(subject="Reminder {document_number}", body_text="Hi"))
    assert (replaced.id, replaced.tenant_id, replaced.created_at) == ("e-1", "acme", created)
    assert (replaced.subject, replaced.body_text) == ("Reminder {document_number}", "Hi")


def test_a_new_e_mail_template_has_its_own_id_and_is_created_now():
    first, second = (EmailTemplate.new(draft(), tenant_id="acme") for _ in range(2))
    assert first.id != second.id and first.tenant_id == "acme"
    assert first.created_at <= first.updated_at


def test_an_e_mail_template_keeps_its_stored_field_names():
    template = EmailTemplate.checked(draft(), id="e-1", tenant_id="acme", created_at=datetime(2026, 11, 1, tzinfo=UTC))
    stored = Entities(EmailTemplate).dump(template)
    assert set(stored) == {
        "_id", "tenant_id", "name", "template_type", "entity_type", "subject", "body_text", "body_html",
        "signature", "variables", "created_at", "updated_at",
    }
    assert Entities(EmailTemplate).load(stored) == template
    assert str(EmailTemplateNotFound("e-2")) == "no e-mail template 'e-2' for this tenant"
    assert isinstance(EmailTemplateNotFound("e-2"), NotFound)


def test_a_refused_variable_is_named_with_where_it_stands_and_a_list_field_is_refused():
    with pytest.raises(TemplateRejected) as refused:
        check(body_text="Dear {name},\n{{lines}} are: {lines}", entity_type="invoice")
    [problem] = refused.value.problems
    assert problem.field == "body_text" and problem.context["names"] == ["lines"]
    assert problem.message.startswith("variables dispatch cannot fill: {lines} at line 2, column 16;")
    assert "amount_due" in allowed_variables("invoice") and "lines" not in allowed_variables("invoice")
