"""Template rules without I/O: predefined and custom fields, Word names as variables, options of a new version."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from publipost_refusals import Conflict, Invalid
from publipost_storage import Entities
from publipost_template.domain import (
    PREDEFINED_FIELDS,
    FieldSplit,
    FirstGenerationTemplate,
    OptionChanges,
    Template,
    TemplateOptions,
    TemplateRejected,
    TemplateVersion,
    VersionConflict,
    check_invoice_mapping,
    parse_custom_fields,
    safe_identifier,
    split_fields,
    split_first_generation_fields,
)

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def version(number: int, *, converted: bool = False) -> TemplateVersion:
    return TemplateVersion.uploaded(
        tenant_id="acme",
        template_id="t-1",
        number=number,
        filename="Notice.docx",
        fields=FieldSplit(fields=["name", "signatory"], predefined=["name"], custom=["signatory"]),
        options=TemplateOptions(custom_fields="signatory"),
        blob_id="blob-docx",
        original_blob_id="blob-original" if converted else None,
        field_mapping={"Nom.du client": "nom_du_client"} if converted else {},
        conversion_notes=[],
        created_at=NOW,
    )


def test_fields_split_into_the_records_own_and_the_declared_custom_ones():
    split = split_fields({"name", "premium", "date", "signatory"}, entity_type="client", custom=["signatory"])
    assert split.fields == ["date", "name", "premium", "signatory"]
    assert split.predefined == ["date", "name", "premium"]
    assert split.custom == ["signatory"]


def test_a_field_neither_predefined_nor_declared_is_refused_with_every_such_name():
    with pytest.raises(TemplateRejected) as refused:
        split_fields({"name", "signatory", "premim"}, entity_type="client", custom=[])
    [problem] = refused.value.problems
    assert problem.field == "file"
    assert problem.context["names"] == ["premim", "signatory"]
    assert "premim, signatory" in problem.message


def test_predefined_fields_depend_on_the_entity_type():
    assert "customer_number" in PREDEFINED_FIELDS["client"]
    assert "supplier_number" in PREDEFINED_FIELDS["supplier"]
    with pytest.raises(TemplateRejected) as refused:
        split_fields({"customer_number"}, entity_type="supplier", custom=[])
    assert refused.value.problems[0].context["names"] == ["customer_number"]


def test_an_unknown_entity_type_is_refused_naming_the_known_ones():
    with pytest.raises(TemplateRejected) as refused:
        split_fields({"name"}, entity_type="planet", custom=[])
    assert refused.value.problems[0].field == "entity_type"
    assert "client" in refused.value.problems[0].message


def test_declaring_a_predefined_or_unused_field_custom_is_refused_too():
    with pytest.raises(TemplateRejected) as refused:
        split_fields({"name", "signatory"}, entity_type="client", custom=["signatory", "name", "reason"])
    messages = {p.message for p in refused.value.problems}
    assert all(p.field == "custom_fields" for p in refused.value.problems)
    assert any("predefined" in m and "name" in m for m in messages)
    assert any("not used" in m and "reason" in m for m in messages)


def test_custom_fields_are_read_from_a_comma_separated_list():
    assert parse_custom_fields(" signatory, reason ,, signatory") == ["signatory", "reason"]
    assert parse_custom_fields("") == []
    assert parse_custom_fields("Nom du signataire", word_names={"Nom du signataire": "nom_du_signataire"}) == [
        "nom_du_signataire"
    ]


@pytest.mark.parametrize("bad", ["two words", "_private", "9lives", "a-b", "x" * 65])
def test_a_custom_field_that_is_not_a_name_is_refused(bad):
    with pytest.raises(TemplateRejected) as refused:
        parse_custom_fields(f"signatory, {bad}")
    assert refused.value.problems[0].field == "custom_fields"
    assert repr(bad) in refused.value.problems[0].message


@pytest.mark.parametrize(
    ("word_name", "variable"),
    [
        ("Name", "name"),
        ("Nom du client", "nom_du_client"),
        ("Prénom", "prenom"),
        ("N° contrat", "n_contrat"),
        ("2nd_line", "field_2nd_line"),
        ("if", "if_"),
        ("«»", "field"),
    ],
)
def test_a_word_field_name_becomes_a_safe_variable(word_name, variable):
    assert safe_identifier(word_name) == variable


def test_a_template_stored_before_custom_fields_were_declared_has_every_other_field_custom():
    assert split_first_generation_fields(["signatory", "name", "premium"]) == (["name", "premium"], ["signatory"])


def test_a_new_version_keeps_the_previous_options_except_those_given():
    previous = replace(
        version(1),
        template_type="due_notice",
        auto_pdf=False,
        validation_required=True,
        custom_fields=["signatory", "reason"],
    )
    options = previous.options().changed(OptionChanges(auto_pdf=True))
    assert options == TemplateOptions("due_notice", True, True, "client", "signatory, reason")


def test_the_documented_predefined_fields_are_the_ones_the_service_checks():
    docs = (Path(__file__).parents[2] / "docs" / "templates.md").read_text()
    common = ["name", "email", "phone", "address", "postal_code", "city", "country", "document_number", "date"]
    documented = {
        cells[0]: common + cells[1].split(", ")
        for line in docs.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])[0] in PREDEFINED_FIELDS
    }
    assert documented == {entity_type: list(names) for entity_type, names in PREDEFINED_FIELDS.items()}


def test_a_new_version_takes_the_next_number_and_holds_its_files():
    assert version(3).next_number == 4
    assert version(1).blob_ids == ["blob-docx"]
    assert version(1, converted=True).blob_ids == ["blob-docx", "blob-original"]


def test_a_version_is_stored_with_the_field_names_and_word_pairs_it_always_had():
    versions = Entities(TemplateVersion)
    stored = versions.dump(version(2, converted=True))
    assert stored["field_mapping"] == [("Nom.du client", "nom_du_client")]  # a Word name may hold dots
    assert set(stored) == {
        "tenant_id", "template_id", "version", "blob_id", "original_blob_id", "filename", "fields",
        "predefined_fields", "custom_fields", "template_type", "auto_pdf", "validation_required", "entity_type",
        "field_mapping", "conversion_notes", "invoice_mapping", "created_at",
    }
    assert versions.load({"_id": "t-1:2", **stored}) == version(2, converted=True)
    del stored["invoice_mapping"]  # a version stored before e-invoices
    assert versions.load({"_id": "t-1:2", **stored}) == version(2, converted=True)


def test_a_template_stored_before_versions_existed_becomes_its_version_with_the_options_of_then():
    stored = {
        "_id": "t-old",
        "tenant_id": "acme",
        "name": "Notice",
        "blob_id": "b",
        "fields": ["signatory", "name"],
        "created_at": NOW,
    }
    first = Entities(FirstGenerationTemplate).load(stored).as_version()
    assert (first.template_id, first.version, first.blob_id, first.filename) == ("t-old", 1, "b", "Notice.docx")
    assert (first.fields, first.predefined_fields, first.custom_fields) == (
        ["name", "signatory"],
        ["name"],
        ["signatory"],
    )
    assert first.options() == TemplateOptions(custom_fields="signatory")
    assert Entities(Template).load(stored).updated_at is None  # until the upgrade at start sets it


def test_a_new_template_is_created_and_updated_now():
    template = Template.new(tenant_id="acme", name="Notice", now=NOW)
    assert (template.created_at, template.updated_at, template.name) == (NOW, NOW, "Notice")
    assert Entities(Template).dump(template)["_id"] == template.id


def test_refusals_are_named_by_kind():
    assert isinstance(TemplateRejected("file", "not a DOCX"), Invalid)
    conflict = VersionConflict()
    assert isinstance(conflict, Conflict)
    assert str(conflict) == "other versions were being added at the same time; send it again"


def test_an_invoice_template_maps_record_keys_to_invoice_fields_and_other_templates_take_no_mapping():
    assert check_invoice_mapping("invoice", '{"number": "facture.numero"}') == [("number", "facture.numero")]
    assert check_invoice_mapping("client", "") == []
    with pytest.raises(TemplateRejected, match="invoice_mapping: only templates of entity type invoice or credit_note"):
        check_invoice_mapping("client", '{"number": "n"}')
    with pytest.raises(TemplateRejected, match="invoice_mapping: unknown invoice field 'numero'"):
        check_invoice_mapping("credit_note", '{"numero": "n"}')
    with pytest.raises(TemplateRejected, match="invoice_mapping: not JSON: .* line 1 column"):
        check_invoice_mapping("invoice", "{number: n}")
