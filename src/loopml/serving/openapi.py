"""The OpenAPI document of a model server (``/openapi.json``) and a page that shows it
(``/docs``, plain HTML without scripts or assets fetched from elsewhere)."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["docs_page", "openapi_document"]

_ERROR = {"type": "object", "properties": {
    "error_code": {"type": "string"}, "message": {"type": "string"},
    "request_id": {"type": "string"},
    "field": {"type": ["string", "null"], "description": "the column or input at fault"},
    "row": {"type": ["integer", "null"], "description": "the row at fault (from 0)"}}}
_BODY = {"type": "object", "description": "exactly one of the four formats", "properties": {
    "dataframe_records": {"type": "array", "items": {"type": "object"}},
    "dataframe_split": {"type": "object", "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": {"type": "array"}}}},
    "instances": {"type": "array"},
    "inputs": {"oneOf": [{"type": "array"}, {"type": "object"}]}}}
_ANSWER = {"type": "object", "properties": {
    "predictions": {"type": "array"}, "model": {"type": "string"},
    "version": {"type": "integer"}, "request_id": {"type": "string"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {400: "malformed JSON or no known format", 401: "missing or wrong bearer token",
               413: "body over the size limit", 422: "data that does not fit the signature "
               "(names the field and row)", 503: "no model loaded yet"}
    return {str(s): {"description": reasons[s], "content": {
        "application/json": {"schema": _ERROR}}} for s in statuses}


def _predict(summary: str, example: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": _BODY}
    if example is not None:
        body["example"] = example
    return {"post": {
        "summary": summary, "requestBody": {"required": True,
                                            "content": {"application/json": body}},
        "responses": {"200": {"description": "predictions, and the version that made them",
                              "content": {"application/json": {"schema": _ANSWER}}},
                      **_errors(400, 401, 413, 422, 503)}}}


def _get(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": summary,
                                                              "content": {media: {}}}}}}


def openapi_document(*, model: str, signature: dict[str, Any] | None, example: Any,
                     auth: bool, proba: bool) -> dict[str, Any]:
    """The document for a server of ``model`` whose current version has ``signature``."""
    inputs = "no signature: inputs are not checked" if signature is None else (
        "inputs: " + ", ".join(f"{c.get('name')} ({c.get('dtype')})"
                               for c in signature.get("inputs", {}).get("columns", [])
                               or signature.get("inputs", {}).get("tensors", [])))
    paths: dict[str, Any] = {
        "/invocations": _predict("Predict (MLflow's route)", example),
        "/predict": _predict("Predict", example),
        "/feedback": {"post": {"summary": "Store the true label of an answered request",
                               "requestBody": {"required": True, "content": {
                                   "application/json": {"schema": {
                                       "type": "object", "required": ["request_id", "label"],
                                       "properties": {"request_id": {"type": "string"},
                                                      "label": {}}}}}},
                               "responses": {"202": {"description": "stored"},
                                             **_errors(400, 401, 413)}}},
        "/health": _get("The process is up"),
        "/ready": _get("The model is loaded and warmed (503 until then)"),
        "/metrics": _get("Prometheus metrics", "text/plain"),
    }
    if proba:
        paths["/predict_proba"] = _predict("Class probabilities", example)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"loopml model server: {model}", "version": "1",
                 "description": f"Serves {model}. {inputs}."},
        "paths": paths,
    }
    if auth:
        document["components"] = {"securitySchemes": {"bearer": {"type": "http",
                                                                 "scheme": "bearer"}}}
        document["security"] = [{"bearer": []}]
    return document


def docs_page(document: dict[str, Any]) -> str:
    """A readable page of ``document``'s routes."""
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>"
                        f"{html.escape(path)}</code></td><td>"
                        f"{html.escape(operation.get('summary', ''))}</td></tr>")
    info = document["info"]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(info['title'])}</title></head><body><h1>"
            f"{html.escape(info['title'])}</h1><p>{html.escape(info['description'])}</p>"
            "<table><tr><th>method</th><th>path</th><th>what</th></tr>" + "".join(rows)
            + "</table><p>Request bodies: <code>dataframe_records</code>, "
            "<code>dataframe_split</code>, <code>instances</code> or <code>inputs</code>. "
            "The machine-readable document is <a href='/openapi.json'>/openapi.json</a>."
            "</p></body></html>")
