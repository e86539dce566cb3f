"""E-mail template rules without I/O: legacy placeholders, known variables, default subjects."""

import pytest
from publipost_template.domain import TemplateRejected
from publipost_template.email_templates import DEFAULT_SUBJECTS, EmailContent, allowed_variables, check_email_template


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
