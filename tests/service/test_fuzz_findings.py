"""The cases the schemathesis run (``test_api_fuzz.py``) found, one regular test each: a
keyed multipart upload, bodies the framework cannot parse, and If-Match values that are no
ETag on operations where If-Match is optional."""

from __future__ import annotations

import pytest

from tests.service.activity_config.helpers import basic_body, create, prizes
from tests.service.harness import Platform
from tests.service.reward.test_shipments import put_address, shipments_for

TRACKING_HEADER = "shipment_id,record_number,logistics_company,tracking_number\n"


async def test_a_keyed_tracking_upload_is_imported_once_and_replayed(platform: Platform) -> None:
    """The form of a ``File`` endpoint is parsed before the dependencies run; the claim of
    its Idempotency-Key still reads the raw body (it was a 500 ``Stream consumed``)."""
    (shipment,) = await shipments_for(platform, ["u-1"])
    await put_address(platform, shipment, "u-1")
    text = TRACKING_HEADER + f"{shipment['id']},,SF Express,SF100\n"
    headers = {**platform.operator(), "Idempotency-Key": "tracking-1"}

    async def upload(body: str, boundary: str) -> object:
        content = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="t.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
            f"{body}\r\n--{boundary}--\r\n"
        ).encode()
        return await platform.reward.post(
            "/v1/shipments/tracking",
            content=content,
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    first = await upload(text, "first-form-0001")
    assert first.status_code == 200, first.text
    assert first.json()["succeeded"] == 1
    # the same file in a form with another boundary is the same request: replayed
    again = await upload(text, "second-form-0002")
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    # another file under the same key is refused, and changes nothing
    other = await upload(TRACKING_HEADER + f"{shipment['id']},,Kerry,KE999\n", "third-form-0003")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    listed = await platform.reward.get("/v1/shipments", headers=platform.operator())
    (row,) = listed.json()["items"]
    assert row["tracking_number"] == "SF100"


async def test_a_keyed_batch_form_works_too(platform: Platform) -> None:
    """The reward center reads its form itself; with a key the body was read first."""
    files = {"file": ("b.csv", b"user_id,prize_id\n", "text/csv")}
    headers = {**platform.operator(), "Idempotency-Key": "batch-1"}
    response = await platform.reward.post("/v1/reward-center/batches", files=files, headers=headers)
    # refused for what the file lacks (no activity code anywhere), not with a 500
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "activity_code_required"


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("reward", "/v1/prizes"),
        ("activity", "/v1/activities"),
        ("activity", "/v1/events"),
        ("referral", "/v1/bindings"),
    ],
)
async def test_a_json_body_that_is_not_utf8_is_422(
    platform: Platform, service: str, path: str
) -> None:
    headers = platform.service() if path == "/v1/events" else platform.operator()
    response = await platform.clients[service].post(
        path,
        content=b'{"name": "\xc2d\xff"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_body"


async def test_broken_multipart_forms_are_422(platform: Platform) -> None:
    operator = platform.operator()
    # a form whose parts have no headers at all
    broken = await platform.reward.post(
        "/v1/shipments/tracking",
        content=b"--b1\r\n[{}, []]--b1--\r\n",
        headers={**operator, "Content-Type": "multipart/form-data; boundary=b1"},
    )
    assert broken.status_code == 422, broken.text
    assert broken.json()["code"] == "invalid_body"
    # more fields than the reward center's form takes
    many = b"".join(
        f'--b1\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
        for i in range(8)
    )
    too_many = await platform.reward.post(
        "/v1/reward-center/batches",
        content=many + b"--b1--\r\n",
        headers={**operator, "Content-Type": "multipart/form-data; boundary=b1"},
    )
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["code"] == "invalid_body"
    # the refused requests stored nothing
    batches = await platform.reward.get("/v1/reward-center/batches", headers=operator)
    assert batches.json()["items"] == []


@pytest.mark.parametrize("operation", ["publish", "close", "delete"])
async def test_an_if_match_that_is_no_etag_is_a_documented_428(
    platform: Platform, operation: str
) -> None:
    draft = await create(platform, basic_body(await prizes(platform, 2)))
    headers = {**platform.operator(), "If-Match": "null"}
    path = f"/v1/activities/{draft['id']}"
    if operation == "delete":
        response = await platform.activity.delete(path, headers=headers)
        documented = platform.apps["activity"].openapi()["paths"]["/v1/activities/{activity_id}"][
            "delete"
        ]
    else:
        response = await platform.activity.post(f"{path}/{operation}", headers=headers)
        documented = platform.apps["activity"].openapi()["paths"][
            f"/v1/activities/{{activity_id}}/{operation}"
        ]["post"]
    assert response.status_code == 428, response.text
    assert response.json()["code"] == "precondition_required"
    assert {"412", "428"} <= set(documented["responses"])
    # nothing happened to the draft
    kept = await platform.activity.get(path, headers=platform.operator())
    assert kept.status_code == 200 and kept.json()["status"] == "draft"


async def test_the_export_file_name_of_any_activity_code_is_a_valid_header(
    platform: Platform,
) -> None:
    """An activity code with characters a header cannot carry was a 500 (the file name in
    Content-Disposition); the file name keeps letters, digits, dot, dash and underscore."""
    for code, expected in [
        ("\U0006a089\x16K\u00b8", "reward-records-__K_.csv"),
        ('A"B\r\nX-Evil: 1', "reward-records-A_B__X-Evil__1.csv"),
        ("SPRING-2026_v1.2", "reward-records-SPRING-2026_v1.2.csv"),
    ]:
        response = await platform.reward.get(
            "/v1/reward-records/export",
            params={"activity_code": code},
            headers=platform.operator(),
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"] == f'attachment; filename="{expected}"'
        assert "x-evil" not in response.headers
        assert response.text.lstrip("\ufeff").startswith("number,activity_code")
