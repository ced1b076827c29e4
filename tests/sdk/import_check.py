#!/usr/bin/env python3
"""Read apps and AppCodes copied by `apig-appcode import` with Huawei Cloud's official SDK.

Run by tests/import.rs against the target's management API, which sets:

  APIG_ENDPOINT           http://127.0.0.1:PORT of the target's management API
  APIG_PROJECT, APIG_INSTANCE
  APIG_AK, APIG_SK        a key pair configured in the target
  APIG_EXPECT             a JSON file: {"total": N, "apps": [{"id", "name", "remark", "app_key",
                          "app_secret", "codes": [{"id", "app_code"}]}]}, as the source holds them

Every check prints one line; the script exits 1 if any check failed, 2 if it crashed.
"""

import json
import os
import sys
import traceback

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkapig.v2 import (
    ApigClient,
    ListAppCodesV2Request,
    ListAppsV2Request,
    ShowDetailsOfAppV2Request,
)

INSTANCE = os.environ["APIG_INSTANCE"]
failures = []


def check(what, condition, detail=""):
    print(("ok    " if condition else "FAIL  ") + what + ("" if condition else f"  ({detail})"))
    if not condition:
        failures.append(what)


def main():
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    sdk = (
        ApigClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(os.environ["APIG_AK"], os.environ["APIG_SK"], os.environ["APIG_PROJECT"]))
        .with_endpoints([os.environ["APIG_ENDPOINT"]])
        .build()
    )
    with open(os.environ["APIG_EXPECT"]) as f:
        expect = json.load(f)

    listed = sdk.list_apps_v2(ListAppsV2Request(instance_id=INSTANCE, limit=1))
    check("list apps: the source's total", listed.total == expect["total"], listed.total)
    for app in expect["apps"]:
        shown = sdk.show_details_of_app_v2(ShowDetailsOfAppV2Request(instance_id=INSTANCE, app_id=app["id"]))
        got = (shown.id, shown.name, shown.remark, shown.app_key, shown.app_secret)
        want = (app["id"], app["name"], app["remark"], app["app_key"], app["app_secret"])
        # Never the values themselves in the output: say which field differs.
        differs = [n for n, g, w in zip(("id", "name", "remark", "app_key", "app_secret"), got, want) if g != w]
        check(f"app {app['id']}: as at the source", not differs, differs)
        codes = sdk.list_app_codes_v2(ListAppCodesV2Request(instance_id=INSTANCE, app_id=app["id"], limit=500))
        got = sorted((c.id, c.app_code) for c in codes.app_codes)
        want = sorted((c["id"], c["app_code"]) for c in app["codes"])
        check(f"app {app['id']}: its {len(want)} AppCodes, IDs and values", got == want, f"{len(got)} codes")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(2)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)
