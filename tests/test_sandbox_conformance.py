"""Every sandbox answer validates against the vendor OpenAPI file's schema for its status."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from conftest import Sandbox

SPEC_PATH = Path(__file__).parent / "data" / "exto-data-api.json"
SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
MASTER = "/api/v1/master-record/{masterName}"
MODULE = "/api/v1/module-record/{moduleName}"
USER = "johndoe@exto360.com"


def _resolve(node: Any) -> Any:
    """Inline $refs and turn OpenAPI 3.0 `nullable` into JSON Schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            return _resolve(copy.deepcopy(SPEC["components"]["schemas"][name]))
        out = {k: _resolve(v) for k, v in node.items() if k not in ("example", "nullable")}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    return node


def schema_for(path: str, method: str, status: int) -> dict[str, Any] | None:
    response = SPEC["paths"][path][method]["responses"][str(status)]
    content = response.get("content", {}).get("application/json")
    return _resolve(content["schema"]) if content else None


def check(response: requests.Response, path: str, method: str, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    schema = schema_for(path, method, status)
    if schema is not None:
        jsonschema.validate(body, schema)
    if status >= 400:
        jsonschema.validate(body, _resolve(SPEC["components"]["schemas"]["ErrorResponse"]))
        assert set(body) == {"code", "timestamp", "path", "error"}
        assert body["code"] == status and isinstance(body["error"]["detail"], list)
    return body


def call(sb: Sandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**sb.auth, **kwargs.pop("headers", {})}
    return requests.request(method, sb.url + path, headers=headers, timeout=10, **kwargs)


def test_vendor_file_is_the_unchanged_copy() -> None:
    digest = hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    assert digest == "604d2afae8885f1fd021504a02dcb38ac680367da8cf65724944783482637b52"


@pytest.mark.parametrize("which", ["liveness", "readiness"])
def test_health_needs_no_token(sandbox: Sandbox, which: str) -> None:
    response = requests.get(f"{sandbox.url}/api/v1/health/{which}", timeout=5)
    assert check(response, f"/api/v1/health/{which}", "get", 200)["ok"] is True


def test_build_info(sandbox: Sandbox) -> None:
    body = check(call(sandbox, "GET", "/api/v1/build/info"), "/api/v1/build/info", "get", 200)
    assert body["name"] == "exto-data-api"


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
def test_missing_or_malformed_token_is_401(sandbox: Sandbox, token: str | None) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = requests.get(f"{sandbox.url}/api/v1/build/info", headers=headers, timeout=5)
    body = check(response, "/api/v1/build/info", "get", 401)
    assert body["error"]["detail"] == ["Invalid authentication token."]


def test_master_list_envelope(sandbox: Sandbox) -> None:
    body = check(
        call(sandbox, "GET", "/api/v1/master-record/LOCATION", params={"pageSize": 7}),
        MASTER,
        "get",
        200,
    )
    assert (body["total"], body["page"], body["pageSize"], body["totalPages"]) == (30, 1, 7, 5)
    row = body["rows"][0]
    assert row["_id"] == row["id"] and len(row["_id"]) == 24
    assert row["refId"] == row["slug"] and len(row["refId"]) == 7
    assert {
        "customFields",
        "tenantID",
        "projectID",
        "createdBy",
        "createdAt",
        "updatedBy",
        "updatedAt",
        "isDeleted",
    } <= set(row)


def test_master_default_page_size_is_25(sandbox: Sandbox) -> None:
    body = call(sandbox, "GET", "/api/v1/master-record/LOCATION").json()
    assert (body["pageSize"], len(body["rows"])) == (25, 25)


def test_master_name_is_upper_cased(sandbox: Sandbox) -> None:
    assert call(sandbox, "GET", "/api/v1/master-record/location").json()["total"] == 30


def test_module_list_carries_record_numbers(sandbox: Sandbox) -> None:
    body = check(
        call(sandbox, "GET", "/api/v1/module-record/INSPECTION", params={"pageSize": 2}),
        MODULE,
        "get",
        200,
    )
    assert body["rows"][0]["recordNumber"] == "INS-1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": 0}, "Page must be greater than 0"),
        ({"page": "x"}, "Page must be greater than 0"),
        ({"pageSize": 0}, "Page size must be between 1 and 1000"),
        ({"pageSize": 1001}, "Page size must be between 1 and 1000"),
        ({"filter": "name:zz:1"}, "unknown operator 'zz'"),
        ({"localTimeZone": "Mars/Base"}, "Invalid localTimeZone"),
    ],
)
def test_bad_list_parameters_are_400(
    sandbox: Sandbox, params: dict[str, Any], message: str
) -> None:
    body = check(
        call(sandbox, "GET", "/api/v1/master-record/LOCATION", params=params), MASTER, "get", 400
    )
    assert message in body["error"]["detail"][0]


def test_unknown_master_is_500_not_found(sandbox: Sandbox) -> None:
    body = check(call(sandbox, "GET", "/api/v1/master-record/ITEM_MASTERX"), MASTER, "get", 500)
    assert body["error"] == {"summary": "Service Exception", "detail": ["ITEM_MASTERX not Found."]}
    assert body["path"] == "/api/v1/master-record/ITEM_MASTERX"


def test_unknown_module_is_500_not_found(sandbox: Sandbox) -> None:
    body = check(call(sandbox, "GET", "/api/v1/module-record/NOPE"), MODULE, "get", 500)
    assert body["error"]["detail"] == ["NOPE not Found."]


def test_upsert_inserts_then_updates_by_unique_field(sandbox: Sandbox) -> None:
    path = "/api/v1/master-record/LOCATION"
    body = check(
        call(sandbox, "POST", path, json=[{"code": "NEW-1", "name": "a"}, {"name": "no key"}]),
        MASTER,
        "post",
        201,
    )
    assert (body["insertedCount"], body["updatedCount"], len(body["insertedIds"])) == (2, 0, 2)
    body = check(
        call(
            sandbox,
            "POST",
            path,
            json=[{"code": "NEW-1", "name": "b"}, {"code": "LOC-001", "city": "X"}],
        ),
        MASTER,
        "post",
        201,
    )
    assert (body["insertedCount"], body["updatedCount"], body["insertedIds"]) == (0, 2, [])
    rows = call(sandbox, "GET", path, params={"filter": "code:eq:NEW-1"}).json()["rows"]
    assert [r["customFields"]["name"] for r in rows] == ["b"]
    loc = call(sandbox, "GET", path, params={"filter": "code:eq:LOC-001"}).json()["rows"][0]
    assert loc["customFields"]["city"] == "X" and loc["customFields"]["name"] == "Chennai site 1"


def test_1001_records_is_400(sandbox: Sandbox) -> None:
    body = check(
        call(sandbox, "POST", "/api/v1/master-record/LOCATION", json=[{"name": "x"}] * 1001),
        MASTER,
        "post",
        400,
    )
    assert body["error"]["detail"] == ["Maximum 1000 records allowed but received 1001"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"json": {"code": "A"}}, 400, "must be an array"),
        ({"json": []}, 400, "non-empty"),
        ({"json": [1, 2]}, 400, "record 0: expected an object"),
        ({"data": b"[{", "headers": {"Content-Type": "application/json"}}, 400, "Malformed JSON"),
        (
            {"data": b"code=A", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            400,
            "Content-Type",
        ),
        ({"json": [{"area_sqm": "big"}]}, 400, "field 'area_sqm' expects number"),
        ({"json": [{"code": {"deep": {"x": 1}}}]}, 400, "nested too deeply"),
    ],
)
def test_bad_write_bodies_are_rejected(
    sandbox: Sandbox, kwargs: dict[str, Any], status: int, message: str
) -> None:
    body = check(
        call(sandbox, "POST", "/api/v1/master-record/LOCATION", **kwargs), MASTER, "post", status
    )
    assert message in " ".join(body["error"]["detail"])


def test_oversized_body_is_413(sandbox: Sandbox) -> None:
    big = b"[" + b'{"name":"' + b"x" * (11 * 1024 * 1024) + b'"}]'
    response = call(
        sandbox,
        "POST",
        "/api/v1/master-record/LOCATION",
        data=big,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["code"] == 413


def test_master_patch_matches_by_ref_id(sandbox: Sandbox) -> None:
    path = "/api/v1/master-record/LOCATION"
    ref = call(sandbox, "GET", path, params={"pageSize": 1}).json()["rows"][0]["refId"]
    body = check(
        call(
            sandbox, "PATCH", path, json=[{"refId": ref, "name": "patched"}, {"refId": "zzzzzzz"}]
        ),
        MASTER,
        "patch",
        200,
    )
    assert body["updatedCount"] == 1
    rows = call(sandbox, "GET", path, params={"filter": f"refId:eq:{ref}"}).json()["rows"]
    assert rows[0]["customFields"]["name"] == "patched"


def test_master_delete_needs_user_and_reports_success(sandbox: Sandbox) -> None:
    path = "/api/v1/master-record/LOCATION"
    ref = call(sandbox, "GET", path, params={"pageSize": 1}).json()["rows"][0]["refId"]
    check(call(sandbox, "DELETE", path, json=[{"refId": ref}]), MASTER, "delete", 400)
    denied = call(
        sandbox, "DELETE", path, params={"userName": "lite@exto.local"}, json=[{"refId": ref}]
    )
    assert denied.status_code == 200 and denied.json()["success"] is False
    done = call(sandbox, "DELETE", path, params={"userName": USER}, json=[{"recordNumber": ref}])
    assert done.status_code == 200 and done.json()["success"] is True
    assert call(sandbox, "GET", path).json()["total"] == 29


def test_module_writes_need_an_active_user(sandbox: Sandbox) -> None:
    path = "/api/v1/module-record/INSPECTION"
    body = check(call(sandbox, "POST", path, json=[{"title": "t"}]), MODULE, "post", 400)
    assert body["error"]["detail"] == ["Missing userName"]
    body = check(
        call(
            sandbox, "POST", path, params={"userName": "former@exto.local"}, json=[{"title": "t"}]
        ),
        MODULE,
        "post",
        400,
    )
    assert body["error"]["detail"] == ["User not found or active"]
    body = check(
        call(sandbox, "POST", path, params={"userName": USER}, json=[{"title": "t"}]),
        MODULE,
        "post",
        201,
    )
    assert body["insertedCount"] == 1
    row = call(sandbox, "GET", path, params={"filter": f"_id:eq:{body['insertedIds'][0]}"}).json()[
        "rows"
    ][0]
    assert row["recordNumber"] == "INS-121" and row["createdBy"] == USER


def test_module_validation_failure_names_the_field(sandbox: Sandbox) -> None:
    body = check(
        call(
            sandbox,
            "POST",
            "/api/v1/module-record/INSPECTION",
            params={"userName": USER},
            json=[{"score": "high"}],
        ),
        MODULE,
        "post",
        400,
    )
    assert body["error"]["summary"] == "MODULE_RECORD_VALIDATION_FAILED"


def test_module_patch_rejects_id_and_accepts_one_object(sandbox: Sandbox) -> None:
    path = "/api/v1/module-record/INSPECTION"
    body = check(
        call(sandbox, "PATCH", path, params={"userName": USER}, json={"_id": "x"}),
        MODULE,
        "patch",
        400,
    )
    assert body["error"]["detail"] == ["Updating '_id' is not allowed"]
    body = check(
        call(
            sandbox,
            "PATCH",
            path,
            params={"userName": USER},
            json={"recordNumber": "INS-2", "score": 99},
        ),
        MODULE,
        "patch",
        200,
    )
    assert body["updatedCount"] == 1


def test_module_delete_by_record_number(sandbox: Sandbox) -> None:
    path = "/api/v1/module-record/INSPECTION"
    ok = call(sandbox, "DELETE", path, params={"userName": USER}, json=[{"recordNumber": "INS-3"}])
    assert ok.status_code == 200 and ok.json()["success"] is True
    check(
        call(sandbox, "DELETE", path, params={"userName": USER}, json=[{"recordNumber": "INS-3"}]),
        MODULE,
        "delete",
        404,
    )


def test_users_list_and_by_user(sandbox: Sandbox) -> None:
    body = check(
        call(sandbox, "GET", "/api/v1/user/user-access"), "/api/v1/user/user-access", "get", 200
    )
    assert body["total"] == 5 and body["pageSize"] == 1000
    assert {"user", "groups", "projects"} == set(body["rows"][0])
    one = check(
        call(
            sandbox,
            "GET",
            "/api/v1/user/user-access/by-user",
            params={"username": "JohnDoe@Exto360.com"},
        ),
        "/api/v1/user/user-access/by-user",
        "get",
        200,
    )
    assert one["user"]["userName"] == USER
    check(
        call(sandbox, "GET", "/api/v1/user/user-access/by-user"),
        "/api/v1/user/user-access/by-user",
        "get",
        400,
    )


def test_users_are_scoped_by_project(sandbox: Sandbox) -> None:
    body = call(
        sandbox, "GET", "/api/v1/user/user-access", headers={"X-Project-Id": "p6iD1Wb"}
    ).json()
    assert body["total"] == 3


@pytest.mark.parametrize("flag", ["onlyProjectsGroups", "onlyProjectGroups"])
def test_groups_accept_both_spellings_of_the_project_flag(sandbox: Sandbox, flag: str) -> None:
    everything = check(
        call(sandbox, "GET", "/api/v1/user/groups"), "/api/v1/user/groups", "get", 200
    )
    project_only = call(sandbox, "GET", "/api/v1/user/groups", params={flag: "true"}).json()
    assert everything["total"] == 7 and project_only["total"] == 5
    assert everything["pageSize"] == 100


def test_project_header_scopes_reads_and_stamps_writes(sandbox: Sandbox) -> None:
    path = "/api/v1/master-record/LOCATION"
    scoped = call(sandbox, "GET", path, headers={"X-Project-Id": "Vx6-j2Z"}).json()
    assert scoped["total"] == 15 and {r["projectID"] for r in scoped["rows"]} == {"Vx6-j2Z"}
    body = call(
        sandbox, "POST", path, headers={"X-Project-Id": "p6iD1Wb"}, json=[{"code": "P-1"}]
    ).json()
    row = call(sandbox, "GET", path, params={"filter": "code:eq:P-1"}).json()["rows"][0]
    assert row["_id"] == body["insertedIds"][0] and row["projectID"] == "p6iD1Wb"


def test_unknown_project_is_reported(sandbox: Sandbox) -> None:
    response = call(
        sandbox, "GET", "/api/v1/master-record/LOCATION", headers={"X-Project-Id": "nope123"}
    )
    assert response.status_code == 500
    assert response.json()["error"]["detail"] == ["Project not found for id: nope123"]


def test_sort_ascending_and_descending(sandbox: Sandbox) -> None:
    path = "/api/v1/master-record/LOCATION"
    up = [
        r["customFields"]["area_sqm"]
        for r in call(sandbox, "GET", path, params={"sort": "area_sqm", "pageSize": 30}).json()[
            "rows"
        ]
    ]
    down = [
        r["customFields"]["area_sqm"]
        for r in call(sandbox, "GET", path, params={"sort": "-area_sqm", "pageSize": 30}).json()[
            "rows"
        ]
    ]
    assert up == sorted(up) and down == sorted(up, reverse=True)


def test_status_parameter_filters_module_records(sandbox: Sandbox) -> None:
    rows = call(
        sandbox,
        "GET",
        "/api/v1/module-record/INSPECTION",
        params={"status": "Approved", "pageSize": 200},
    ).json()["rows"]
    assert rows and {r["status"] for r in rows} == {"Approved"}


def test_unknown_route_and_method_use_the_error_shape(sandbox: Sandbox) -> None:
    assert call(sandbox, "GET", "/api/v1/nothing").json()["code"] == 404
    assert call(sandbox, "PUT", "/api/v1/master-record/LOCATION").json()["code"] == 405
