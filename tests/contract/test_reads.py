"""The HTTP reads one service makes of another answer the typed models of publipost_contracts.reads: merge's
routes declare them (so its OpenAPI document shows them), and dispatch's client parses them."""

from publipost_contracts.reads import DocumentPage, MailingView
from publipost_merge.app import build
from publipost_merge.settings import MergeSettings

READS = {
    ("get", "/mailings/{mailing_id}"): MailingView,
    ("get", "/mailings/{mailing_id}/documents"): DocumentPage,
}


def test_merge_answers_what_dispatch_reads_with_the_contract_models():
    openapi = build(MergeSettings(namespace="contract")).http_app().openapi()
    schemas = openapi["components"]["schemas"]
    for (method, path), model in READS.items():
        answered = openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answered == {"$ref": f"#/components/schemas/{model.__name__}"}, (path, answered)
        declared = schemas[model.__name__]
        assert set(declared["properties"]) == set(model.model_json_schema()["properties"]), model.__name__

