"""The HTTP API on real parts (moto server, SQLite, Prefect API): the key names the account,
every read is scoped by it, and no key opens another tenant's bytes."""

import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, db
from retainwise.entrypoints.app import create_app
from retainwise.entrypoints.deps import UNAUTHORIZED
from tests.helpers import customers_csv


@pytest.fixture
def http(resources):
    return TestClient(create_app(resources))


@pytest.fixture
def keys(resources):
    """Keys of every kind: A's, B's, a revoked one of A, one of a disabled account."""
    engine = resources.engine
    for name in ("acme", "bravo", "gone"):
        accounts.create_account(engine, name)
    issued = {
        "a": accounts.create_key(engine, "acme")["api_key"],
        "b": accounts.create_key(engine, "bravo")["api_key"],
    }
    revoked = accounts.create_key(engine, "acme")
    accounts.revoke_key(engine, revoked["key_id"])
    issued["revoked"] = revoked["api_key"]
    issued["disabled"] = accounts.create_key(engine, "gone")["api_key"]
    accounts.disable_account(engine, "gone")
    return issued


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(http, key: str, rows: int = 25, **headers) -> str:
    response = http.post(
        "/uploads", content=customers_csv(rows), headers={**bearer(key), **headers}
    )
    assert response.status_code == 202, response.text
    return response.json()["prediction_id"]


@pytest.mark.usefixtures("prefect_api")
def test_upload_with_a_key_then_status_results_rejects_and_report(http, resources, keys):
    from flows.score_upload import score_upload

    prediction_id = upload(http, keys["a"], **{"x-filename": "../../etc/passwd"})
    assert (
        http.get(f"/uploads/{prediction_id}", headers=bearer(keys["a"])).json()["status"]
        == "PENDING"
    )
    pending = http.get(f"/uploads/{prediction_id}/results", headers=bearer(keys["a"]))
    assert pending.status_code == 409 and "PENDING" in pending.json()["detail"]

    [message] = resources.queue.receive(wait_seconds=1)
    assert message.upload().account == "acme"
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.input_key == f"uploads/acme/{prediction_id}/input"  # never the user's name
    score_upload(prediction_id)
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.result_key == f"results/acme/{prediction_id}/results.csv"

    status = http.get(f"/uploads/{prediction_id}", headers=bearer(keys["a"])).json()
    assert (status["status"], status["rows_scored"]) == ("COMPLETED", 25)
    results = http.get(f"/uploads/{prediction_id}/results", headers=bearer(keys["a"]))
    assert results.status_code == 200 and len(results.text.strip().splitlines()) == 26
    rejects = http.get(f"/uploads/{prediction_id}/rejects", headers=bearer(keys["a"]))
    assert rejects.status_code == 200 and rejects.text.startswith("row_number")
    html = http.get(f"/uploads/{prediction_id}/report", headers=bearer(keys["a"]))
    assert html.headers["content-type"].startswith("text/html") and "COMPLETED" in html.text
    report = http.get(
        f"/uploads/{prediction_id}/report",
        headers={**bearer(keys["a"]), "Accept": "application/json"},
    ).json()
    assert report["rows_scored"] == 25
    listed = http.get("/uploads", headers=bearer(keys["a"])).json()
    assert [u["id"] for u in listed["uploads"]] == [prediction_id]

    ids = results.text.strip().splitlines()[1:]
    outcomes = (
        "customer_id,churned\n"
        + "".join(f"{line.split(',')[0]},{n % 2}\n" for n, line in enumerate(ids[:10]))
        + "ghost,1\n"
    )
    stored = http.post(
        f"/uploads/{prediction_id}/outcomes",
        content=outcomes.encode(),
        headers={**bearer(keys["a"]), "Content-Type": "text/csv"},
    )
    assert stored.status_code == 200, stored.text
    assert (stored.json()["matched"], stored.json()["unmatched"]) == (10, 1)
    theirs = http.post(
        f"/uploads/{prediction_id}/outcomes", content=outcomes.encode(), headers=bearer(keys["b"])
    )
    assert theirs.status_code == 404
    bad = http.post(
        f"/uploads/{prediction_id}/outcomes", content=b"who,what\n1,2\n", headers=bearer(keys["a"])
    )
    assert bad.status_code == 400 and "customer_id" in bad.json()["detail"]


def endpoints(prediction_id: str) -> list[tuple[str, str]]:
    return [("POST", "/uploads"), ("GET", "/uploads"), ("GET", f"/uploads/{prediction_id}")] + [
        ("GET", f"/uploads/{prediction_id}/{part}") for part in ("results", "rejects", "report")
    ]


@pytest.mark.usefixtures("prefect_api")
def test_every_endpoint_refuses_every_bad_key_and_never_shows_another_tenant(http, keys):
    from flows.score_upload import score_upload

    prediction_id = upload(http, keys["a"])
    score_upload(prediction_id)
    a_bytes = http.get(f"/uploads/{prediction_id}/results", headers=bearer(keys["a"])).content
    bad = {
        "no key": {},
        "malformed": {"Authorization": "Bearer nope"},
        "not bearer": {"Authorization": f"Basic {keys['a']}"},
        "revoked": bearer(keys["revoked"]),
        "disabled account": bearer(keys["disabled"]),
    }
    for method, path in endpoints(prediction_id):
        for case, headers in bad.items():
            response = http.request(method, path, headers=headers, content=b"x,y\n1,2\n")
            assert response.status_code == 401, (method, path, case)
            assert response.json()["detail"] == UNAUTHORIZED
            assert response.headers["www-authenticate"] == "Bearer"
        other = http.request(method, path, headers=bearer(keys["b"]), content=customers_csv(3))
        if (method, path) == ("POST", "/uploads"):
            assert other.status_code == 202  # B's own upload, under B
            continue
        if path == "/uploads":
            assert prediction_id not in other.text
            continue
        assert other.status_code == 404, (method, path)
        missing = http.request(
            method, path.replace(prediction_id, "0" * 36), headers=bearer(keys["b"])
        )
        assert (
            other.json()["detail"].replace(prediction_id, "0" * 36) == missing.json()["detail"]
        )  # indistinguishable from an id that does not exist
        assert a_bytes[:200] not in other.content


def test_uploads_are_refused_before_reading_when_too_large_unsized_or_over_the_cap(
    http, resources, keys
):
    resources.settings.max_upload_bytes = 1000
    too_big = http.post("/uploads", content=b"x" * 1001, headers=bearer(keys["a"]))
    assert too_big.status_code == 413 and "MB" in too_big.json()["detail"]
    unsized = http.post("/uploads", content=iter([b"a,b\n", b"1,2\n"]), headers=bearer(keys["a"]))
    assert unsized.status_code == 411
    resources.settings.max_upload_bytes = 10**6
    wrong_model = http.post("/uploads?model=other", content=b"a\n1\n", headers=bearer(keys["a"]))
    assert wrong_model.status_code == 400 and "churn" in wrong_model.json()["detail"]
    resources.settings.max_active_uploads = 2
    upload(http, keys["a"], 5)
    upload(http, keys["a"], 5)
    capped = http.post("/uploads", content=customers_csv(5), headers=bearer(keys["a"]))
    assert capped.status_code == 429 and capped.headers["retry-after"] == "30"
    upload(http, keys["b"], 5)  # one tenant's burst does not stop another


def test_a_form_upload_streams_the_file_field(http, resources, keys):
    response = http.post(
        "/uploads",
        files={"file": ("mine.csv", customers_csv(10), "text/csv")},
        headers=bearer(keys["a"]),
    )
    assert response.status_code == 202
    row = db.get_prediction(resources.engine, response.json()["prediction_id"])
    assert row.original_filename == "mine.csv"
    from retainwise.adapters import aws

    assert aws.get_bytes(resources.s3, resources.settings.bucket, row.input_key) == customers_csv(
        10
    )


def test_the_openapi_document_declares_the_bearer_scheme(http):
    document = http.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from your operator: `rw_<key id>_<secret>`.",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert operation["security"] == [{"apiKey": []}], path
