"""The console's new-mailing, directory, template and send forms made into what the services take, without I/O."""

import pytest
from publipost_console.addresses import AddressChoice, address_choices
from publipost_console.catalog import MESSAGES
from publipost_console.selection import (
    CRITERION_OPS,
    DATE_FIELDS,
    LIST_FIELDS,
    TEMPLATE_TYPES,
    YES_NO_FIELDS,
    SelectionProblem,
    custom_field_values,
    import_problems,
    segment_filter,
)
from publipost_console.template_screens import _options
from publipost_recipient_directory.domain import SegmentFilter


def test_an_empty_selection_sets_no_condition():
    assert segment_filter({"f_country_in": " ", "f_has_email": "", "crit_attr_0": ""}) == {}


def test_every_condition_of_the_form_is_one_the_directory_takes():
    form = {
        "f_country_in": "fr, be",
        "f_family": "company",
        "f_postal_code": "75002,75003",
        "f_has_email": "yes",
        "f_opted_in": "no",
        "f_visited_since": "2024-01-31",
        "crit_attr_0": "mileage",
        "crit_op_0": "gt",
        "crit_value_0": "100000",
        "crit_attr_1": "model",
        "crit_op_1": "in",
        "crit_value_1": "Clio, Megane",
        "crit_attr_2": "registered",
        "crit_op_2": "present",
    }
    found = segment_filter(form)
    assert found["country_in"] == ["fr", "be"]
    assert found["has_email"] is True and found["opted_in"] is False
    assert found["criteria"] == [
        {"attribute": "mileage", "op": "gt", "value": 100000.0},  # compared as a number at the directory
        {"attribute": "model", "op": "in", "value": ["Clio", "Megane"]},
        {"attribute": "registered", "op": "present", "value": None},
    ]
    checked = SegmentFilter.model_validate(found)
    assert checked.country_in == ["FR", "BE"] and checked.criteria[0].value == 100000.0


def test_a_text_comparison_stays_text():
    found = segment_filter({"crit_attr_0": "first_registration", "crit_op_0": "lt", "crit_value_0": "2015-01-01"})
    assert found["criteria"][0]["value"] == "2015-01-01"


def test_a_condition_without_its_value_names_its_field():
    with pytest.raises(SelectionProblem) as refused:
        segment_filter({"crit_attr_1": "mileage", "crit_op_1": "gte", "crit_value_1": " "})
    assert refused.value.field == "crit_value_1" and "mileage" in str(refused.value)


def test_an_unknown_comparison_is_refused():
    with pytest.raises(SelectionProblem, match="crit_op_0"):
        segment_filter({"crit_attr_0": "mileage", "crit_op_0": "near", "crit_value_0": "1"})


def test_only_the_templates_custom_fields_typed_are_given():
    form = {"cf_signatory": " Jane ", "cf_office": "", "cf_other": "x", "name": "n"}
    assert custom_field_values(["signatory", "office"], form) == {"signatory": "Jane"}


def test_an_import_refusal_becomes_rows_of_line_column_message():
    refusal = {
        "message": "the file was not imported, nothing was stored: 2 problems",
        "detail": [
            {"line": 3, "column": "email", "column_number": 4, "msg": "not an e-mail address"},
            {"line": None, "column": None, "column_number": None, "msg": "customer_number column missing"},
        ],
    }
    assert import_problems(refusal) == [
        {"line": 3, "column": "email", "message": "not an e-mail address"},
        {"line": None, "column": "", "message": "customer_number column missing"},
    ]
    wrong_file = {"detail": [{"loc": ["body", "file"], "msg": "'a.txt' is neither a .csv nor an .xlsx file"}]}
    assert import_problems(wrong_file) == [
        {"line": None, "column": "file", "message": "'a.txt' is neither a .csv nor an .xlsx file"}
    ]


def test_an_unticked_option_is_sent_as_no_so_a_new_version_does_not_keep_the_last_ones():
    assert _options({"template_type": "due_notice", "custom_fields": " signatory ", "auto_pdf": "true"}) == {
        "template_type": "due_notice",
        "entity_type": "client",
        "custom_fields": "signatory",
        "auto_pdf": "true",
        "validation_required": "false",
    }


def test_every_label_named_by_a_value_is_in_the_catalog():
    named = (
        {f"filter.{name}" for name in (*LIST_FIELDS, *YES_NO_FIELDS, *DATE_FIELDS)}
        | {f"filter.op.{op}" for op in CRITERION_OPS}
        | {f"type.{kind}" for kind in TEMPLATE_TYPES}
        | {f"filter.answer.{answer}" for answer in ("any", "yes", "no")}
    )
    assert named <= set(MESSAGES["en"])


def test_the_one_documents_recipient_has_each_of_its_addresses_offered_once():
    document = {"email": "Two@Reject.test", "customer_number": "C0002"}
    recipient = {
        "email": "two@example.test",
        "billing_email": "two@reject.test",  # the record's, named once
        "main_email": None,
        "contacts": [{"name": "Paul Compta", "email": "compta@example.test", "correspondence_types": ["invoice"]}],
    }
    assert address_choices(document, recipient) == [
        AddressChoice("Two@Reject.test", "record"),
        AddressChoice("two@example.test", "directory"),
        AddressChoice("compta@example.test", "contact", "Paul Compta, invoice"),
    ]
    assert address_choices({"email": None}, None) == []
