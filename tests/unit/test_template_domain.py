"""Template rules without I/O: predefined and custom fields, Word names as variables, options of a new version."""

from dataclasses import replace
from pathlib import Path

import pytest
from publipost_template.domain import (
    PREDEFINED_FIELDS,
    TemplateOptions,
    TemplateRejected,
    parse_custom_fields,
    safe_identifier,
    split_fields,
    split_first_generation_fields,
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
    previous = {
        "template_type": "due_notice",
        "auto_pdf": False,
        "validation_required": True,
        "entity_type": "client",
        "custom_fields": ["signatory", "reason"],
    }
    options = replace(TemplateOptions.of_version(previous), auto_pdf=True)
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
