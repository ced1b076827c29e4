#!/usr/bin/env python3
"""Drive the apig-appcode management API with Huawei Cloud's official Python SDK.

Run by tests/sdk_interop.rs, which starts the management API and a gateway protected by
AppCodeAuthLayer (both on 127.0.0.1, port 0) and sets:

  APIG_ENDPOINT   http://127.0.0.1:PORT of the management API
  APIG_GATEWAY    http://127.0.0.1:PORT of the gateway (GET /hello needs X-Apig-AppCode; it
                  sees this script's address, 127.0.0.1, for app ACLs)
  APIG_PROJECT, APIG_INSTANCE
  APIG_AK, APIG_SK        a read-write key pair configured in the server
  APIG_RO_AK, APIG_RO_SK  a read-only key pair configured in the server

Every check prints one line; the script exits 1 if any check failed, 2 if it crashed.
"""

import os
import re
import sys
import traceback

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import (
    ClientRequestException,
    ServiceResponseException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkapig.v2 import (
    ApigClient,
    AppAclCreate,
    AppCodeCreate,
    AppCreate,
    AppQuotaCreate,
    AppResetCreate,
    AssociateAppsForAppQuotaRequest,
    CreateAppQuotaBindingApp,
    CreateAppQuotaRequest,
    DeleteAppQuotaRequest,
    DisassociateAppQuotaWithAppRequest,
    ListAppQuotaBindableAppsRequest,
    ListAppQuotaBoundAppsRequest,
    ListAppQuotasRequest,
    ShowAppBoundAppQuotaRequest,
    ShowAppQuotaRequest,
    UpdateAppQuotaRequest,
    CreateAnAppV2Request,
    CreateAppCodeAutoV2Request,
    CreateAppCodeV2Request,
    DeleteAppAclRequest,
    DeleteAppCodeV2Request,
    DeleteAppV2Request,
    ListAppCodesV2Request,
    ListAppsV2Request,
    ResettingAppSecretV2Request,
    ShowDetailsOfAppAclRequest,
    ShowDetailsOfAppCodeV2Request,
    ShowDetailsOfAppV2Request,
    UpdateAppAclRequest,
    UpdateAppV2Request,
)

ENDPOINT = os.environ["APIG_ENDPOINT"]
GATEWAY = os.environ["APIG_GATEWAY"]
PROJECT = os.environ["APIG_PROJECT"]
INSTANCE = os.environ["APIG_INSTANCE"]

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

failures = []


def check(what, condition, detail=""):
    print(("ok    " if condition else "FAIL  ") + what + ("" if condition else f"  ({detail})"))
    if not condition:
        failures.append(what)


def client(ak, sk):
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    return (
        ApigClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(ak, sk, PROJECT))
        .with_endpoints([ENDPOINT])
        .build()
    )


def expect_error(what, call, status, code):
    """`call` must raise the SDK's exception with this status and error_code."""
    try:
        call()
    except ServiceResponseException as e:
        check(
            f"{what}: {status} {code}",
            e.status_code == status and e.error_code == code and bool(e.request_id),
            f"got {e.status_code} {e.error_code!r} {e.error_msg!r} request_id={e.request_id!r}",
        )
        if status < 500:
            check(f"{what}: raised as ClientRequestException", isinstance(e, ClientRequestException))
        return e
    check(f"{what}: {status} {code}", False, "no exception")
    return None


def gateway(code):
    headers = {} if code is None else {"X-Apig-AppCode": code}
    return requests.get(f"{GATEWAY}/hello", headers=headers, timeout=10)


def main():
    sdk = client(os.environ["APIG_AK"], os.environ["APIG_SK"])
    read_only = client(os.environ["APIG_RO_AK"], os.environ["APIG_RO_SK"])
    wrong_sk = client(os.environ["APIG_AK"], os.environ["APIG_SK"] + "x")

    # Apps: create, show, list.
    app = sdk.create_an_app_v2(
        CreateAnAppV2Request(
            instance_id=INSTANCE, body=AppCreate(name="sdk_interop_app", remark="made by the SDK")
        )
    )
    check("create app: 201", app.status_code == 201, app.status_code)
    check("create app: id is 32 hex", bool(HEX32.match(app.id or "")), app.id)
    check("create app: name and remark", (app.name, app.remark) == ("sdk_interop_app", "made by the SDK"))
    check("create app: generated key and secret", bool(HEX32.match(app.app_key or "")) and bool(HEX32.match(app.app_secret or "")))
    check("create app: status 1, creator USER, type apig", (app.status, app.creator, app.app_type) == (1, "USER", "apig"))
    raw = app.to_json_object()
    check("create app: register_time/update_time format", bool(TIME.match(raw["register_time"])) and bool(TIME.match(raw["update_time"])), raw)
    app_id = app.id

    shown = sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=app_id))
    check("show app: 200, same app", shown.status_code == 200 and shown.to_json_object() == raw)
    listed = read_only.list_apps_v2(
        ListAppsV2Request(instance_id=INSTANCE, name="sdk_interop_app", precise_search="name", limit=10)
    )
    check("list apps (read-only key, precise name): total 1, size 1", (listed.total, listed.size) == (1, 1), listed)
    check("list apps: item id and bind_num", listed.apps[0].id == app_id and listed.apps[0].bind_num == 0)
    expect_error(
        "create app with invalid name",
        lambda: sdk.create_an_app_v2(CreateAnAppV2Request(instance_id=INSTANCE, body=AppCreate(name="1bad"))),
        400,
        "APIG.2012",
    )
    expect_error(
        "create app with a name that exists",
        lambda: sdk.create_an_app_v2(CreateAnAppV2Request(instance_id=INSTANCE, body=AppCreate(name="sdk_interop_app"))),
        400,
        "APIG.3203",
    )
    expect_error(
        "create app with the read-only key",
        lambda: read_only.create_an_app_v2(CreateAnAppV2Request(instance_id=INSTANCE, body=AppCreate(name="ro_app"))),
        403,
        "APIG.1005",
    )

    # AppCodes: create with a value, auto-generate, v1 create, show, list.
    value = "SdkInterop+/" + "a1" * 30
    created = sdk.create_app_code_v2(
        CreateAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, body=AppCodeCreate(app_code=value))
    )
    check("create AppCode with value: 201", created.status_code == 201, created.status_code)
    check("create AppCode: fields", (created.app_code, created.app_id) == (value, app_id) and bool(HEX32.match(created.id or "")))
    check("create AppCode: create_time format", bool(TIME.match(created.create_time or "")), created.create_time)
    check("gateway accepts the new AppCode", gateway(value).status_code == 200)

    auto = sdk.create_app_code_auto_v2(CreateAppCodeAutoV2Request(instance_id=INSTANCE, app_id=app_id))
    check("auto-generate AppCode: 201, 64 lowercase hex", auto.status_code == 201 and bool(HEX64.match(auto.app_code or "")), auto)
    check("gateway accepts the generated AppCode", gateway(auto.app_code).status_code == 200)

    # The v1 path has no model in the SDK: send CreateAppCodeV2's request there, signed by the SDK.
    v1_value = "V1Interop" + "b2" * 30
    info = sdk._create_app_code_v2_http_info(
        CreateAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, body=AppCodeCreate(app_code=v1_value))
    )
    info["resource_path"] = info["resource_path"].replace("/v2/", "/v1/", 1)
    v1 = sdk._call_api(**info)
    check("v1 create AppCode: 201, fields", v1.status_code == 201 and v1.app_code == v1_value and v1.app_id == app_id, v1)

    one = sdk.show_details_of_app_code_v2(
        ShowDetailsOfAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, app_code_id=created.id)
    )
    check(
        "show AppCode: documented 201, same code",
        one.status_code == 201 and one.to_json_object() == created.to_json_object(),
        (one.status_code, one.to_json_object(), created.to_json_object()),
    )
    codes = read_only.list_app_codes_v2(ListAppCodesV2Request(instance_id=INSTANCE, app_id=app_id, limit=2))
    check("list AppCodes (read-only key, limit 2): total 3, size 2", (codes.status_code, codes.total, codes.size) == (200, 3, 2), codes)
    check("list AppCodes: oldest first", [c.id for c in codes.app_codes] == [created.id, auto.id])

    # Update and reset-secret: the app keeps its ID, register_time and AppCodes.
    def update(body, client=sdk, target=app_id):
        return client.update_app_v2(UpdateAppV2Request(instance_id=INSTANCE, app_id=target, body=body))

    def reset(body=None, client=sdk, target=app_id):
        return client.resetting_app_secret_v2(ResettingAppSecretV2Request(instance_id=INSTANCE, app_id=target, body=body))

    updated = update(AppCreate(name="sdk_renamed_app", remark="updated by the SDK", app_key="sdk-key-0001", app_secret="Sdk_secret!1"))
    check("update app: documented 201", updated.status_code == 201, updated.status_code)
    check(
        "update app: fields",
        (updated.id, updated.name, updated.remark, updated.app_key, updated.app_secret)
        == (app_id, "sdk_renamed_app", "updated by the SDK", "sdk-key-0001", "Sdk_secret!1"),
        updated,
    )
    updated_raw = updated.to_json_object()
    check(
        "update app: register_time kept, update_time format",
        updated_raw["register_time"] == raw["register_time"] and bool(TIME.match(updated_raw["update_time"])),
        updated_raw,
    )
    shown = sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=app_id))
    check("show app after update: same as the update's answer", shown.to_json_object() == updated_raw, shown)
    renamed = update(AppCreate(name="sdk_interop_app"))
    check(
        "update app with the name only: the rest kept",
        (renamed.name, renamed.remark, renamed.app_key, renamed.app_secret)
        == ("sdk_interop_app", "updated by the SDK", "sdk-key-0001", "Sdk_secret!1"),
        renamed,
    )
    given = reset(AppResetCreate(app_secret="Given_reset!2"))
    check(
        "reset secret with a value: 200, the value",
        given.status_code == 200 and given.app_secret == "Given_reset!2" and given.id == app_id,
        given,
    )
    secrets = {"Given_reset!2"}
    for what, body in [("without a body", None), ("with an empty body", AppResetCreate())]:
        fresh = reset(body)
        check(
            f"reset secret {what}: 200, a new 32-hex secret",
            fresh.status_code == 200 and bool(HEX32.match(fresh.app_secret or "")) and fresh.app_secret not in secrets,
            fresh,
        )
        secrets.add(fresh.app_secret)
        shown = sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=app_id))
        check(f"show app after a reset {what}: the new secret", shown.app_secret == fresh.app_secret, shown)
    check("gateway still accepts the AppCode after update and reset", gateway(auto.app_code).status_code == 200)

    other = sdk.create_an_app_v2(
        CreateAnAppV2Request(instance_id=INSTANCE, body=AppCreate(name="sdk_other_app", app_key="sdk-other-key1"))
    )
    expect_error("update app to another app's name", lambda: update(AppCreate(name="sdk_other_app")), 400, "APIG.3203")
    expect_error(
        "update app to another app's key",
        lambda: update(AppCreate(name="sdk_interop_app", app_key="sdk-other-key1")),
        400,
        "APIG.3310",
    )
    sdk.delete_app_v2(DeleteAppV2Request(instance_id=INSTANCE, app_id=other.id))
    expect_error("update app with an invalid name", lambda: update(AppCreate(name="1bad")), 400, "APIG.2012")
    expect_error("reset secret with an invalid one", lambda: reset(AppResetCreate(app_secret="short")), 400, "APIG.2012")
    expect_error(
        "update app with the read-only key",
        lambda: update(AppCreate(name="ro_rename"), client=read_only),
        403,
        "APIG.1005",
    )
    expect_error("reset secret with the read-only key", lambda: reset(client=read_only), 403, "APIG.1005")
    expect_error("update unknown app", lambda: update(AppCreate(name="ghost_app"), target="0" * 32), 404, "APIG.3004")
    expect_error("reset secret of unknown app", lambda: reset(target="0" * 32), 404, "APIG.3004")

    # Errors the SDK must surface.
    expect_error(
        "create AppCode with a bad value",
        lambda: sdk.create_app_code_v2(
            CreateAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, body=AppCodeCreate(app_code="too-short"))
        ),
        400,
        "APIG.2012",
    )
    expect_error(
        "create AppCode with a value that exists",
        lambda: sdk.create_app_code_v2(
            CreateAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, body=AppCodeCreate(app_code=value))
        ),
        400,
        "APIG.3311",
    )
    for i in range(2):
        sdk.create_app_code_auto_v2(CreateAppCodeAutoV2Request(instance_id=INSTANCE, app_id=app_id))
    expect_error(
        "sixth AppCode",
        lambda: sdk.create_app_code_auto_v2(CreateAppCodeAutoV2Request(instance_id=INSTANCE, app_id=app_id)),
        403,
        "APIG.3131",
    )
    missing = "0" * 32
    e = expect_error(
        "show unknown app",
        lambda: sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=missing)),
        404,
        "APIG.3004",
    )
    check("unknown app: message", e is not None and e.error_msg == f"App {missing} does not exist", e and e.error_msg)
    expect_error(
        "auto-generate on unknown app",
        lambda: sdk.create_app_code_auto_v2(CreateAppCodeAutoV2Request(instance_id=INSTANCE, app_id=missing)),
        404,
        "APIG.3004",
    )
    expect_error(
        "show unknown AppCode",
        lambda: sdk.show_details_of_app_code_v2(
            ShowDetailsOfAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, app_code_id=missing)
        ),
        404,
        "APIG.3082",
    )
    expect_error(
        "list apps of an unknown instance",
        lambda: sdk.list_apps_v2(ListAppsV2Request(instance_id="f" * 32)),
        404,
        "APIG.3030",
    )
    expect_error(
        "wrong SK",
        lambda: wrong_sk.list_apps_v2(ListAppsV2Request(instance_id=INSTANCE)),
        401,
        "APIG.1002",
    )

    # App ACL: set, show, replace, remove; the gateway follows each before the call returns.
    def set_acl(kind, values, client=sdk, target=app_id):
        body = AppAclCreate(app_acl_type=kind, app_acl_values=values)
        return client.update_app_acl(UpdateAppAclRequest(instance_id=INSTANCE, app_id=target, body=body))

    def show_acl(client=sdk):
        return client.show_details_of_app_acl(ShowDetailsOfAppAclRequest(instance_id=INSTANCE, app_id=app_id))

    none = show_acl()
    check("show app ACL before any: 200, no type, no values", (none.status_code, none.app_id, none.app_acl_type, none.app_acl_values) == (200, app_id, None, []), none)
    acl = set_acl("DENY", ["127.0.0.1", "::1"])
    check(
        "set app ACL: 201, app_id, type, values",
        (acl.status_code, acl.app_id, acl.app_acl_type, acl.app_acl_values) == (201, app_id, "DENY", ["127.0.0.1", "::1"]),
        acl,
    )
    refused = gateway(auto.app_code)
    check(
        "gateway refuses the denied address: 403 APIG.0402",
        refused.status_code == 403 and refused.json().get("error_code") == "APIG.0402",
        (refused.status_code, refused.text),
    )
    shown = show_acl(client=read_only)
    check("show app ACL (read-only key): 200, as set", (shown.status_code, shown.app_acl_type, shown.app_acl_values) == (200, "DENY", ["127.0.0.1", "::1"]), shown)
    permit = set_acl("PERMIT", ["127.0.0.0/8", "::1"])
    check("replace app ACL: 201, PERMIT", (permit.status_code, permit.app_acl_type) == (201, "PERMIT"), permit)
    check("gateway accepts the permitted address", gateway(auto.app_code).status_code == 200)
    expect_error("set an app ACL with a bad value", lambda: set_acl("DENY", ["10.0.0.0/99"]), 400, "APIG.2012")
    expect_error("set an app ACL of a bad type", lambda: set_acl("ALLOW", ["10.0.0.1"]), 400, "APIG.2012")
    expect_error("set an app ACL with the read-only key", lambda: set_acl("DENY", ["10.0.0.1"], client=read_only), 403, "APIG.1005")
    expect_error("set the ACL of an unknown app", lambda: set_acl("DENY", ["10.0.0.1"], target="0" * 32), 404, "APIG.3004")
    set_acl("PERMIT", ["192.0.2.1"])
    check("gateway refuses an address no longer permitted", gateway(auto.app_code).status_code == 403)
    removed = sdk.delete_app_acl(DeleteAppAclRequest(instance_id=INSTANCE, app_id=app_id))
    check("delete app ACL: 204", removed.status_code == 204, removed.status_code)
    check("gateway accepts the AppCode again", gateway(auto.app_code).status_code == 200)
    after = show_acl()
    check("show app ACL after delete: no type, no values", (after.app_acl_type, after.app_acl_values) == (None, []), after)

    # App quotas: every call, and the gateway counting under each change before the call returns.
    def quota_body(name, calls, unit="DAY", reset_time=None):
        return AppQuotaCreate(name=name, call_limits=calls, time_unit=unit, time_interval=1, reset_time=reset_time, remark="sdk")

    created_quota = sdk.create_app_quota(CreateAppQuotaRequest(instance_id=INSTANCE, body=quota_body("sdk_quota", 2, reset_time="2026-01-01 00:00:00")))
    check(
        "create app quota: 201, fields as sent",
        (created_quota.status_code, created_quota.name, created_quota.call_limits, created_quota.time_unit, created_quota.time_interval, created_quota.reset_time, created_quota.bound_app_num)
        == (201, "sdk_quota", 2, "DAY", 1, "2026-01-01 00:00:00", 0),
        created_quota,
    )
    quota_id = created_quota.app_quota_id
    check("create app quota: id is 32 hex", bool(HEX32.match(quota_id or "")), quota_id)
    expect_error("create an app quota of a taken name", lambda: sdk.create_app_quota(CreateAppQuotaRequest(instance_id=INSTANCE, body=quota_body("sdk_quota", 1))), 400, "APIG.3325")
    expect_error("create an app quota of a bad unit", lambda: sdk.create_app_quota(CreateAppQuotaRequest(instance_id=INSTANCE, body=quota_body("sdk_bad", 1, unit="WEEK"))), 400, "APIG.2012")
    expect_error("create an app quota with the read-only key", lambda: read_only.create_app_quota(CreateAppQuotaRequest(instance_id=INSTANCE, body=quota_body("sdk_ro", 1))), 403, "APIG.1005")
    quotas = read_only.list_app_quotas(ListAppQuotasRequest(instance_id=INSTANCE, name="sdk_q", offset=0, limit=10))
    check("list app quotas (read-only key, name filter): 1", (quotas.status_code, quotas.total, quotas.size, [q.app_quota_id for q in quotas.quotas]) == (200, 1, 1, [quota_id]), quotas)
    shown_quota = sdk.show_app_quota(ShowAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id))
    check("show app quota: 200, as created", (shown_quota.status_code, shown_quota.name, shown_quota.call_limits) == (200, "sdk_quota", 2), shown_quota)
    expect_error("show an unknown app quota", lambda: sdk.show_app_quota(ShowAppQuotaRequest(instance_id=INSTANCE, app_quota_id="0" * 32)), 404, "APIG.3093")

    spare = sdk.create_an_app_v2(CreateAnAppV2Request(instance_id=INSTANCE, body=AppCreate(name="sdk_quota_spare")))
    bindable = sdk.list_app_quota_bindable_apps(ListAppQuotaBindableAppsRequest(instance_id=INSTANCE, app_quota_id=quota_id))
    check("list bindable apps: both apps", (bindable.status_code, sorted(a.app_id for a in bindable.apps)) == (200, sorted([app_id, spare.id])), bindable)
    bound = sdk.associate_apps_for_app_quota(
        AssociateAppsForAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id, body=CreateAppQuotaBindingApp(app_ids=[app_id]))
    )
    check(
        "bind an app to the quota: 201, one binding",
        (bound.status_code, [(b.app_quota_id, b.app_id) for b in bound.applies]) == (201, [(quota_id, app_id)]) and bound.applies[0].bound_time is not None,
        bound,
    )
    statuses = [gateway(auto.app_code) for _ in range(3)]
    check("gateway admits the quota's 2 calls", [r.status_code for r in statuses[:2]] == [200, 200], [r.status_code for r in statuses])
    over = statuses[2]
    check(
        "gateway refuses the third call: 405 APIG.0501 with Retry-After",
        over.status_code == 405 and over.json().get("error_code") == "APIG.0501" and int(over.headers.get("Retry-After", "0")) > 0,
        (over.status_code, over.text, dict(over.headers)),
    )
    bound_apps = sdk.list_app_quota_bound_apps(ListAppQuotaBoundAppsRequest(instance_id=INSTANCE, app_quota_id=quota_id))
    check(
        "list bound apps: the app, with the quota's ID and name",
        (bound_apps.status_code, bound_apps.total, [(a.app_id, a.app_quota_id, a.app_quota_name) for a in bound_apps.apps]) == (200, 1, [(app_id, quota_id, "sdk_quota")]),
        bound_apps,
    )
    of_app = sdk.show_app_bound_app_quota(ShowAppBoundAppQuotaRequest(instance_id=INSTANCE, app_id=app_id))
    check("show the app's bound quota: 200, the quota", (of_app.status_code, of_app.app_quota_id, of_app.bound_app_num) == (200, quota_id, 1), of_app)
    expect_error("show the bound quota of an app without one", lambda: sdk.show_app_bound_app_quota(ShowAppBoundAppQuotaRequest(instance_id=INSTANCE, app_id=spare.id)), 404, "APIG.3093")
    expect_error(
        "bind an unknown app",
        lambda: sdk.associate_apps_for_app_quota(
            AssociateAppsForAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id, body=CreateAppQuotaBindingApp(app_ids=["0" * 32]))
        ),
        404,
        "APIG.3004",
    )
    updated_quota = sdk.update_app_quota(UpdateAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id, body=quota_body("sdk_quota", 3, reset_time="2026-01-01 00:00:00")))
    check("update app quota: 200, the new limit", (updated_quota.status_code, updated_quota.call_limits, updated_quota.bound_app_num) == (200, 3, 1), updated_quota)
    check("gateway admits one more call under the raised limit", gateway(auto.app_code).status_code == 200)
    check("gateway refuses past the raised limit", gateway(auto.app_code).status_code == 405)
    unbound = sdk.disassociate_app_quota_with_app(DisassociateAppQuotaWithAppRequest(instance_id=INSTANCE, app_quota_id=quota_id, app_id=app_id))
    check("unbind the app: 204", unbound.status_code == 204, unbound.status_code)
    check("gateway admits the unbound app", gateway(auto.app_code).status_code == 200)
    expect_error(
        "unbind it again",
        lambda: sdk.disassociate_app_quota_with_app(DisassociateAppQuotaWithAppRequest(instance_id=INSTANCE, app_quota_id=quota_id, app_id=app_id)),
        404,
        "APIG.3004",
    )
    sdk.associate_apps_for_app_quota(
        AssociateAppsForAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id, body=CreateAppQuotaBindingApp(app_ids=[spare.id]))
    )
    removed_quota = sdk.delete_app_quota(DeleteAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id))
    check("delete app quota: 204", removed_quota.status_code == 204, removed_quota.status_code)
    expect_error("delete it again", lambda: sdk.delete_app_quota(DeleteAppQuotaRequest(instance_id=INSTANCE, app_quota_id=quota_id)), 404, "APIG.3093")
    sdk.delete_app_v2(DeleteAppV2Request(instance_id=INSTANCE, app_id=spare.id))

    # Deletes: the gateway refuses the codes as soon as the SDK call returns.
    deleted = sdk.delete_app_code_v2(
        DeleteAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, app_code_id=created.id)
    )
    check("delete AppCode: 204", deleted.status_code == 204, deleted.status_code)
    refused = gateway(value)
    check("gateway refuses the deleted AppCode", refused.status_code == 401, (refused.status_code, refused.text))
    check("gateway still accepts the other AppCode", gateway(auto.app_code).status_code == 200)
    expect_error(
        "delete the deleted AppCode again",
        lambda: sdk.delete_app_code_v2(
            DeleteAppCodeV2Request(instance_id=INSTANCE, app_id=app_id, app_code_id=created.id)
        ),
        404,
        "APIG.3082",
    )
    gone = sdk.delete_app_v2(DeleteAppV2Request(instance_id=INSTANCE, app_id=app_id))
    check("delete app: 204", gone.status_code == 204, gone.status_code)
    check("gateway refuses the deleted app's AppCodes", gateway(auto.app_code).status_code == 401 and gateway(v1_value).status_code == 401)
    expect_error(
        "show the deleted app",
        lambda: sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=app_id)),
        404,
        "APIG.3004",
    )
    after = sdk.list_apps_v2(ListAppsV2Request(instance_id=INSTANCE))
    check("list apps after delete: total 0", (after.total, after.size, after.apps) == (0, 0, []), after)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("FAIL  the script crashed")
        sys.exit(2)
    print(f"{len(failures)} checks failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)
