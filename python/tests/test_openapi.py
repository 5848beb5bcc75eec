"""The OpenAPI file of `tarn serve` (`/api/openapi.json`): it documents every endpoint of
SPEC §9, and schemathesis, generating requests from it, finds no server error, no
undocumented status code and no answer that breaks its schema."""

import json
import os
import subprocess
import urllib.request

from conftest import URL, WRITE_TOKEN

SPEC_PATHS = {
    ("get", "/api/v1/datasets"),
    ("get", "/api/v1/info"),
    ("get", "/api/v1/log"),
    ("get", "/api/v1/data"),
    ("post", "/api/v1/query"),
    ("post", "/api/v1/write"),
    ("get", "/api/v1/requests/{id}"),
    ("get", "/api/v1/events"),
    ("get", "/metrics"),
}


def openapi():
    with urllib.request.urlopen(f"{URL}/api/openapi.json", timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return json.load(r)


def test_the_file_documents_every_endpoint_of_the_contract():
    doc = openapi()
    assert doc["openapi"].startswith("3.")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert SPEC_PATHS <= documented, SPEC_PATHS - documented
    # The registry and the queue's other endpoints are there too.
    for path in ("/api/v1/project", "/api/v1/dimension", "/api/v1/dependents", "/api/v1/merge"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


def test_schemathesis_finds_no_failure():
    binary = os.environ.get("TARN_SCHEMATHESIS")
    assert binary, "run-tests sets TARN_SCHEMATHESIS (its own venv)"
    run = subprocess.run(
        [
            binary,
            "run",
            f"{URL}/api/openapi.json",
            "--url",
            URL,
            "--header",
            f"Authorization: Bearer {WRITE_TOKEN}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            # An event stream never ends by design.
            "--exclude-path",
            "/api/v1/events",
            "--max-examples",
            os.environ.get("TARN_SCHEMATHESIS_EXAMPLES", "40"),
            "--request-timeout",
            "70",
            "--seed",
            "1",
            # A generator's own health check (it discards many candidate write bodies), not
            # a finding about the server.
            "--suppress-health-check=filter_too_much",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
