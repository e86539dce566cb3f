"""The template service against the real broker and database: what a user uploading templates sees."""

import asyncio
import io
import random
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from docx import Document
from publipost_contracts import TemplateRegistered
from publipost_merge.rendering import render_docx
from publipost_template.app import build
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials
from tests.support import EventTap, sample_record
from tests.unit.test_template_inspection import docx_with, rezip
from tests.unit.test_template_mergefields import word_letter

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
WORD_SAMPLE = Path(__file__).parents[2] / "samples" / "mergefield-letter.docx"
ACME = credentials("acme")
VIEW_KEYS = {
    "id", "name", "version", "blob_id", "fields", "predefined_fields", "custom_fields", "template_type",
    "auto_pdf", "validation_required", "entity_type", "created_at",
}


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://template")


async def upload(http, data: bytes, name: str = "Notice", filename: str = "notice.docx", **form) -> httpx.Response:
    return await http.post("/templates", headers=ACME, data={"name": name, **form}, files={"file": (filename, data)})


async def new_version(http, template_id: str, data: bytes, **form) -> httpx.Response:
    return await http.post(
        f"/templates/{template_id}/versions", headers=ACME, data=form, files={"file": ("v.docx", data)}
    )


def refused(response: httpx.Response) -> dict:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]


async def blobs_of(service, template_id: str) -> int:
    files = service.storage.client[service.settings.blob_database_name]["fs.files"]
    return await files.count_documents({"metadata.template_id": template_id})


@pytest.fixture
async def service(make_settings, running):
    service = build(make_settings(TemplateSettings))
    await running(service)
    return service


async def test_an_uploaded_template_is_stored_with_its_fields_and_options_and_announced(service, infra, namespace):
    async with EventTap(infra.rabbitmq_url, namespace, TemplateRegistered) as tap, client(service) as http:
        response = await upload(
            http,
            SAMPLE.read_bytes(),
            name="Relance « impayé »",
            filename="letter.docx",
            custom_fields="signatory",
            template_type="unpaid_premium_reminder",
            auto_pdf="false",
            validation_required="true",
        )
        assert response.status_code == 201, response.text
        template = response.json()
        assert VIEW_KEYS <= set(template)
        assert (template["version"], template["template_type"], template["entity_type"]) == (
            1, "unpaid_premium_reminder", "client"
        )
        assert (template["auto_pdf"], template["validation_required"]) == (False, True)
        assert template["custom_fields"] == ["signatory"]
        assert template["predefined_fields"] == [
            "address", "amount_due", "branch", "city", "contract", "customer_number", "date", "document_number",
            "name", "postal_code", "premium", "tax",
        ]
        assert template["fields"] == sorted([*template["predefined_fields"], "signatory"])

        assert (await http.get(f"/templates/{template['id']}", headers=ACME)).json() == template
        listed = (await http.get("/templates", headers=ACME)).json()
        assert (listed["items"], listed["total"]) == ([template], 1)
        assert (await http.get("/templates", headers=credentials("other"))).json()["items"] == []
        assert (await http.get(f"/templates/{template['id']}", headers=credentials("other"))).status_code == 404

        content = await http.get(f"/templates/{template['id']}/content", headers=ACME)
        assert content.content == SAMPLE.read_bytes()
        assert "filename*=UTF-8''Relance%20%C2%AB%20impay%C3%A9%20%C2%BB.docx" in content.headers["content-disposition"]

        announced = await tap.next(TemplateRegistered, lambda e: e.template_id == template["id"])
        assert (announced.version, announced.name, announced.template_type) == (
            1, "Relance « impayé »", "unpaid_premium_reminder"
        )
        assert (announced.fields, announced.custom_fields) == (template["fields"], ["signatory"])


async def test_a_new_version_is_served_by_default_and_older_ones_stay_downloadable(service, infra, namespace):
    first = docx_with("Dear {{ name }}", "Premium: {{ premium }}")
    second = docx_with("Dear {{ name }}, of {{ city }}", "Signed: {{ signatory }}")
    async with EventTap(infra.rabbitmq_url, namespace, TemplateRegistered) as tap, client(service) as http:
        v1 = (await upload(http, first, template_type="due_notice")).json()
        response = await new_version(http, v1["id"], second, custom_fields="signatory", validation_required="true")
        assert response.status_code == 201, response.text
        v2 = response.json()
        assert (v2["id"], v2["version"], v2["fields"]) == (v1["id"], 2, ["city", "name", "signatory"])
        assert (v2["template_type"], v2["validation_required"]) == ("due_notice", True)  # kept / changed

        latest = (await http.get(f"/templates/{v1['id']}", headers=ACME)).json()
        assert latest == v2
        older = (await http.get(f"/templates/{v1['id']}", params={"version": 1}, headers=ACME)).json()
        assert older == v1
        versions = (await http.get(f"/templates/{v1['id']}/versions", headers=ACME)).json()
        assert [v["version"] for v in versions] == [2, 1]
        old_file = await http.get(f"/templates/{v1['id']}/content", params={"version": 1}, headers=ACME)
        assert old_file.content == first
        assert (await http.get(f"/templates/{v1['id']}/content", headers=ACME)).content == second

        missing = await http.get(f"/templates/{v1['id']}", params={"version": 3}, headers=ACME)
        assert missing.status_code == 404 and "no version 3" in missing.json()["detail"]
        assert (await http.get("/templates/nope", headers=ACME)).status_code == 404
        assert (await new_version(http, "nope", second)).status_code == 404

        await tap.next(TemplateRegistered, lambda e: e.template_id == v1["id"] and e.version == 2)
        assert sorted(e.version for e in tap.of(TemplateRegistered)) == [1, 2]


async def test_a_new_version_is_checked_against_its_own_custom_fields(service):
    async with client(service) as http:
        v1 = (await upload(http, docx_with("{{ name }} {{ signatory }}"), custom_fields="signatory")).json()
        detail = refused(await new_version(http, v1["id"], docx_with("{{ name }} {{ reason }}")))
        assert detail["loc"] == ["body", "file"] and detail["ctx"]["names"] == ["reason"]
        assert [v["version"] for v in (await http.get(f"/templates/{v1['id']}/versions", headers=ACME)).json()] == [1]


async def test_versions_added_at_the_same_time_each_get_their_own_number_and_files(service):
    async with client(service) as http:
        v1 = (await upload(http, docx_with("{{ name }}"))).json()
        responses = await asyncio.gather(
            *(new_version(http, v1["id"], docx_with(f"{{{{ name }}}} {n}")) for n in range(4))
        )
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
        assert sorted(r.json()["version"] for r in responses) == [2, 3, 4, 5]
        assert await blobs_of(service, v1["id"]) == 5


async def test_the_list_is_paginated_most_recently_uploaded_first(service):
    async with client(service) as http:
        ids = [(await upload(http, docx_with("{{ name }}"), name=name)).json()["id"] for name in ("a", "b", "c")]
        first = (await http.get("/templates", params={"per_page": 2}, headers=ACME)).json()
        second = (await http.get("/templates", params={"per_page": 2, "page": 2}, headers=ACME)).json()
        assert [t["name"] for t in first["items"]] == ["c", "b"]
        assert [t["name"] for t in second["items"]] == ["a"]
        assert (first["total"], first["page"], first["per_page"]) == (3, 1, 2)

        await new_version(http, ids[0], docx_with("{{ name }} again"))
        again = (await http.get("/templates", headers=ACME)).json()["items"]
        assert [(t["name"], t["version"]) for t in again] == [("a", 2), ("c", 1), ("b", 1)]


async def test_a_template_for_another_entity_type_uses_that_types_fields(service):
    async with client(service) as http:
        predefined = (await http.get("/templates/predefined-fields", headers=ACME)).json()
        assert "supplier_number" in predefined["supplier"] and "supplier_number" not in predefined["client"]
        response = await upload(http, docx_with("{{ name }}: {{ supplier_number }}"), entity_type="supplier")
        assert response.status_code == 201, response.text
        assert response.json()["predefined_fields"] == ["name", "supplier_number"]
        assert refused(await upload(http, docx_with("{{ name }}"), entity_type="planet"))["loc"] == [
            "body", "entity_type"
        ]
        assert refused(await upload(http, docx_with("{{ name }}"), template_type="poem"))["loc"] == [
            "body", "template_type"
        ]


async def test_an_invoice_template_keeps_its_invoice_mapping_and_a_new_version_keeps_it_too(service):
    mapping = '{"number": "facture.numero", "seller.name": "emetteur.nom"}'
    async with client(service) as http:
        uploaded = await upload(http, docx_with("{{ invoice_number }}"), entity_type="invoice", invoice_mapping=mapping)
        assert uploaded.status_code == 201, uploaded.text
        expected = {"number": "facture.numero", "seller.name": "emetteur.nom"}
        assert uploaded.json()["invoice_mapping"] == expected
        template_id = uploaded.json()["id"]
        assert (await new_version(http, template_id, docx_with("{{ amount_due }}"))).status_code == 201
        assert (await http.get(f"/templates/{template_id}", headers=ACME)).json()["invoice_mapping"] == expected

        unknown = await upload(http, docx_with("{{ name }}"), entity_type="invoice", invoice_mapping='{"no": "x"}')
        detail = refused(unknown)
        assert detail["loc"] == ["body", "invoice_mapping"] and "unknown invoice field 'no'" in detail["msg"]
        detail = refused(await upload(http, docx_with("{{ name }}"), invoice_mapping='{"number": "n"}'))
        assert detail["msg"] == "only templates of entity type invoice or credit_note take one"


async def test_fields_neither_predefined_nor_declared_are_refused_with_their_names(service):
    async with client(service) as http:
        detail = refused(await upload(http, SAMPLE.read_bytes()))
        assert detail["loc"] == ["body", "file"]
        assert detail["ctx"]["names"] == ["signatory"]
        assert "signatory" in detail["msg"]
        assert (await http.get("/templates", headers=ACME)).json()["total"] == 0


async def test_a_syntax_error_is_refused_naming_the_tag_and_where_it_is(service):
    async with client(service) as http:
        data = docx_with("Dear {{ name }}", table=[["Premium", "{{ premium }}"], ["Tax", "{{ tax | }}"]])
        detail = refused(await upload(http, data))
        assert detail["loc"] == ["body", "file"]
        assert detail["ctx"]["tag"] == "{{ tax | }}"
        assert detail["ctx"]["part"] == "body" and detail["ctx"]["table_cell"] == "table 1, row 2, cell 2"
        assert "{{ tax | }}" in detail["msg"] and "table 1, row 2, cell 2" in detail["msg"]

        footer = refused(await upload(http, docx_with("Dear {{ name }}", footer="{% if name %}")))
        assert footer["ctx"]["part"] == "footer (footer1.xml)"
        assert "{% if name %} is never closed" in footer["msg"]


async def test_malicious_uploads_are_refused_clearly_and_the_service_keeps_answering(make_settings, running):
    service = build(make_settings(TemplateSettings, max_template_bytes=2_000_000, max_uncompressed_bytes=20_000_000))
    await running(service)
    async with client(service) as http:
        walk = refused(await upload(http, docx_with("{{ name.__class__.__mro__[1].__subclasses__() }}")))
        assert ".__class__" in walk["ctx"]["expressions"] and "may only read its fields" in walk["msg"]

        bomb = rezip(docx_with("Dear {{ name }}"), {"word/media/image1.png": b"\0" * 100_000_000})
        assert len(bomb) < 2_000_000
        assert "once decompressed; at most 20000000" in refused(await upload(http, bomb))["msg"]

        dense = rezip(docx_with("Dear {{ name }}"), {"word/media/image1.png": b"\0" * 5_000_000})
        assert "over the 100:1 limit" in refused(await upload(http, dense))["msg"]

        huge = b"PK" + b"x" * 3_000_000
        too_large = await upload(http, huge)
        assert too_large.status_code == 413, too_large.text
        (detail,) = too_large.json()["detail"]
        assert detail["msg"] == "the request body is over the 2065536-byte limit of POST /templates"

        just_over = rezip(docx_with("Dear {{ name }}"), {"word/media/photo.jpg": random.Random(7).randbytes(2_000_000)})
        assert 2_000_000 < len(just_over) < 2_000_000 + 64 * 1024
        assert refused(await upload(http, just_over))["msg"] == "the file is over the 2000000-byte limit"

        assert "not a DOCX" in refused(await upload(http, b"plain text, not a zip"))["msg"]

        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/templates", headers=ACME)).json()["total"] == 0
        files = service.storage.client[service.settings.blob_database_name]["fs.files"]
        assert await files.count_documents({}) == 0
        assert (await upload(http, docx_with("Dear {{ name }}"))).status_code == 201


async def test_a_template_repeating_a_literal_into_gigabytes_is_refused_and_never_built(service):
    """A 36 KB upload of {{ 'a'*100000*100000 }} once took the service to 20 GB: checking it computed it."""
    async with client(service) as http:
        tracemalloc.start()
        response = await upload(http, docx_with("Dear {{ name }},", "{{ 'a'*100000*100000 }}"))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        detail = refused(response)
        assert detail["loc"] == ["body", "file"]
        assert detail["msg"] == (
            "the template repeats a literal into 10000000000 characters or items in the body, "
            "text “{{ 'a'*100000*100000 }}”; at most 100000"
        )
        assert peak < 50_000_000

        billion = refused(await upload(http, docx_with("Dear {{ name }},", "{{'a'*1000000000}}")))
        assert "repeats a literal into 1000000000 characters" in billion["msg"]
        assert (await http.get("/templates", headers=ACME)).json()["total"] == 0
        assert (await upload(http, docx_with("Dear {{ name }},", "{{ '-' * 80 }}"))).status_code == 201


async def test_an_entity_declaration_or_broken_xml_in_a_part_is_refused_naming_the_part(service):
    """A DTD in [Content_Types].xml (where entity bombs and external entities live) used to answer 500."""
    honest = docx_with("Dear {{ name }}")
    content_types = zipfile.ZipFile(io.BytesIO(honest)).read("[Content_Types].xml").decode()
    declaration, rest = content_types.split("?>", 1)
    entities = '<!DOCTYPE Types [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    async with client(service) as http:
        for evil in (
            declaration + "?>" + entities + rest.replace("<Default", "&b;<Default", 1),
            declaration + "?>" + entities + rest,  # declared, never used
            declaration + '?><!DOCTYPE Types SYSTEM "http://attacker.test/types.dtd">' + rest,
        ):
            detail = refused(await upload(http, rezip(honest, {"[Content_Types].xml": evil.encode()})))
            assert detail["loc"] == ["body", "file"]
            assert detail["ctx"] == {"part": "[Content_Types].xml"}
            assert detail["msg"] == (
                "part [Content_Types].xml of the document declares a DTD or entities (<!DOCTYPE>), which a DOCX never has"
            )

        styles = refused(await upload(http, rezip(honest, {"word/styles.xml": b"<w:styles><unclosed>"})))
        assert styles["ctx"] == {"part": "word/styles.xml"}
        assert styles["msg"].startswith("part word/styles.xml of the document is not well-formed XML")
        assert (await http.get("/templates", headers=ACME)).json()["total"] == 0
        assert (await upload(http, honest)).status_code == 201


async def test_deleting_a_template_removes_every_version_and_file(service):
    async with client(service) as http:
        v1 = (await upload(http, docx_with("{{ name }}"))).json()
        await new_version(http, v1["id"], word_letter(), custom_fields="Nom du client, Agence")
        assert await blobs_of(service, v1["id"]) == 3  # v1, v2 converted, v2 as uploaded

        assert (await http.delete(f"/templates/{v1['id']}", headers=credentials("other"))).status_code == 404
        assert (await http.delete(f"/templates/{v1['id']}", headers=ACME)).status_code == 204
        assert (await http.get(f"/templates/{v1['id']}", headers=ACME)).status_code == 404
        assert (await http.get(f"/templates/{v1['id']}/content", headers=ACME)).status_code == 404
        assert await blobs_of(service, v1["id"]) == 0
        assert (await http.delete(f"/templates/{v1['id']}", headers=ACME)).status_code == 404


async def test_a_word_mail_merge_document_is_converted_and_merge_renders_it(service):
    uploaded = word_letter()
    async with client(service) as http:
        response = await upload(http, uploaded, filename="lettre.docx", custom_fields="Nom du client, Agence")
        assert response.status_code == 201, response.text
        template = response.json()
        assert template["field_mapping"] == {
            "Name": "name",
            "Nom du client": "nom_du_client",
            "Premium": "premium",
            "Agence": "agence",
            "Customer_Number": "customer_number",
        }
        assert template["custom_fields"] == ["nom_du_client", "agence"]
        assert template["conversion_notes"] == [
            "«Premium»: Word's format '0.00' is not applied; the record's value prints as sent"
        ]

        original = await http.get(f"/templates/{template['id']}/original", headers=ACME)
        assert original.content == uploaded
        assert 'filename="lettre.docx"' in original.headers["content-disposition"]
        converted = (await http.get(f"/templates/{template['id']}/content", headers=ACME)).content
        assert converted != uploaded

    record = {"name": "Ada Lovelace", "premium": "120.50", "customer_number": "C0042"}
    rendered = Document(io.BytesIO(render_docx(converted, {**record, "nom_du_client": "Lovelace", "agence": "Lyon"})))
    assert [p.text for p in rendered.paragraphs] == [
        "Dear Ada Lovelace,",
        "Client: LOVELACE",
        "Premium: 120.50 EUR",
        "Branch - Lyon",
    ]
    assert rendered.sections[0].header.paragraphs[0].text == "Ref. C0042"
    assert b"mailMerge" not in zipfile.ZipFile(io.BytesIO(converted)).read("word/settings.xml")


async def test_the_word_mail_merge_sample_uploads_and_renders_a_record(service):
    async with client(service) as http:
        response = await upload(http, WORD_SAMPLE.read_bytes(), custom_fields="Signataire")
        assert response.status_code == 201, response.text
        template = response.json()
        assert template["custom_fields"] == ["signataire"]
        converted = (await http.get(f"/templates/{template['id']}/content", headers=ACME)).content

    record = sample_record(7, date="25/11/2026", due_date="31/12/2026", signataire="Claire Martin")
    text = [p.text for p in Document(io.BytesIO(render_docx(converted, record))).paragraphs]
    assert text[:3] == ["Client Number7", "1 rue de la Paix", "75002 PARIS"]
    assert "Contract CT-7 — notice INV-0007 of 25/11/2026" in text
    assert "Your premium of 100 EUR plus 20 EUR tax, 120 EUR in all, is due by 31/12/2026." in text
    assert text[-1] == "Claire Martin"


async def test_templates_stored_before_versions_existed_are_kept_as_version_1(make_settings, running):
    service = build(make_settings(TemplateSettings))
    blob_id = await service.storage.blobs.put(
        SAMPLE.read_bytes(), "Notice.docx", "application/octet-stream", tenant_id="acme", template_id="t-old"
    )
    fields = ["address", "name", "premium", "signatory"]
    created_at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    await service.storage.db["templates"].insert_one(
        {"_id": "t-old", "tenant_id": "acme", "name": "Notice", "version": 1, "blob_id": blob_id,
         "fields": fields, "created_at": created_at}
    )
    await running(service)
    await running(build(make_settings(TemplateSettings)))  # a second replica starting changes nothing twice
    async with client(service) as http:
        template = (await http.get("/templates/t-old", headers=ACME)).json()
        assert (template["version"], template["blob_id"], template["fields"]) == (1, blob_id, fields)
        assert template["predefined_fields"] == ["address", "name", "premium"]
        assert template["custom_fields"] == ["signatory"]  # merge was always given its value
        assert (await http.get("/templates/t-old/content", headers=ACME)).content == SAMPLE.read_bytes()
        assert [t["id"] for t in (await http.get("/templates", headers=ACME)).json()["items"]] == ["t-old"]
        assert (await new_version(http, "t-old", docx_with("{{ name }} {{ signatory }}"))).json()["version"] == 2


async def test_readiness_tells_the_truth(make_settings, running):
    service = build(make_settings(TemplateSettings))
    async with running(service), client(service) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True, "schema": True}
    down = build(make_settings(TemplateSettings, mongodb_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"))
    async with client(down) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": False, "broker": False, "schema": False}
