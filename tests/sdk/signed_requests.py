#!/usr/bin/env python3
"""Send requests signed by Huawei Cloud's official SDK core (huaweicloudsdkcore's Signer) with an
app's key and secret through the apig-appcode gateway.

Run by tests/gateway_signatures.rs, which starts the binary with --app-auth appcode,signature
in front of an echo upstream (it answers with a JSON description of what it received) and sets:

  APIG_GATEWAY      127.0.0.1:PORT of the gateway listener
  APIG_VERIFY       127.0.0.1:PORT of the verify listener
  APIG_APP_ID       the app the key belongs to
  APIG_APP_KEY, APIG_APP_SECRET   the key and secret to sign with

Modes (argv[1]):
  accept   every check below: signed requests pass, tampered or stale ones are refused
  refused  a GET signed with the key and secret is refused as an invalid signature
  get      a GET signed with the key and secret passes

Every check prints one line; the script exits 1 if any check failed, 2 if it crashed.
"""

import json
import sys
import traceback
from datetime import datetime, timedelta

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

GATEWAY = None
FAILED = []

INVALID = "Incorrect app authentication information: signature invalid"
DATE = "Incorrect app authentication information: X-Sdk-Date missing or expired"
MALFORMED = "Incorrect app authentication information: Authorization missing or malformed"


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        FAILED.append(name)


def signed(method, path, query=None, headers=None, body=None, key=None, secret=None, at=None,
           host=None):
    """A request signed as the SDK signs it; `at` pins X-Sdk-Date."""
    request = SdkRequest(
        method=method,
        schema="http",
        host=host or GATEWAY,
        resource_path=path,
        query_params=list(query or []),
        header_params=dict(headers or {}),
        body=body,
    )
    if at is not None:
        request.header_params["X-Sdk-Date"] = at.strftime("%Y%m%dT%H%M%SZ")
    Signer(BasicCredentials(key or KEY, secret or SECRET)).sign(request)
    return request


def send(request, uri=None, body=None, drop=(), replace=None, host=None):
    headers = {k: v for k, v in request.header_params.items() if k not in drop}
    headers.update(replace or {})
    data = request.body if body is None else body
    url = "http://%s%s" % (host or GATEWAY, uri or request.uri)
    return requests.request(request.method, url, headers=headers, data=data, timeout=30)


def passed(name, response, body_len=None):
    if response.status_code != 200:
        check(name, False, "%d %s" % (response.status_code, response.text))
        return
    echo = response.json()
    headers = echo["headers"]
    leaked = [h for h in headers if h == "authorization" or h.startswith("x-sdk-")]
    check(name + ": the upstream sees the app", headers.get("x-apig-app-id") == [APP_ID],
          json.dumps(headers))
    check(name + ": and no signature headers", not leaked, ", ".join(leaked))
    if body_len is not None:
        check(name + ": and the whole body", echo["body_len"] == body_len, json.dumps(echo))


def refused(name, response, message):
    try:
        body = response.json()
    except ValueError:
        body = {}
    ok = (response.status_code == 401 and body.get("error_code") == "APIG.0303"
          and body.get("error_msg") == message)
    check(name, ok, "%d %s" % (response.status_code, response.text))
    check(name + ": no secret in the answer", SECRET not in response.text, response.text)


def accept():
    get = signed("GET", "/orders/7", query=[("b", "2"), ("a", "1"), ("name", "t\u00e9 x")])
    response = send(get)
    passed("GET with a query", response)
    if response.status_code == 200:
        check("the query arrives as signed", response.json()["path"] == get.uri,
              response.json()["path"])

    payload = json.dumps({"item": "tea", "count": 2}).encode()
    post = signed("POST", "/orders", headers={"Content-Type": "application/json"}, body=payload)
    passed("POST with a JSON body", send(post), len(payload))

    raw = b"\x00\x01 raw bytes " * 100
    put = signed("PUT", "/files/a.bin", headers={"Content-Type": "application/octet-stream"},
                 body=raw)
    check("the SDK declares the octet stream unsigned",
          put.header_params.get("X-Sdk-Content-Sha256") == "UNSIGNED-PAYLOAD",
          json.dumps(put.header_params))
    passed("PUT with UNSIGNED-PAYLOAD", send(put), len(raw))

    verify = signed("GET", "/orders/7", query=[("a", "1")], host=VERIFY)
    response = send(verify, host=VERIFY)
    check("the verify listener accepts a signed GET",
          response.status_code == 200 and response.headers.get("X-Apig-App-Id") == APP_ID,
          "%d %s" % (response.status_code, response.text))

    # As nginx's auth_request asks: HEAD to its own location, the original request line and
    # host in headers the proxy sets.
    original = signed("GET", "/orders/7", query=[("a", "1")])
    headers = dict(original.header_params)
    headers.update({"Host": "apig_verify", "X-Original-Method": "GET",
                    "X-Original-URI": original.uri, "X-Forwarded-Host": headers["Host"]})
    response = requests.head("http://%s/_apig_verify" % VERIFY, headers=headers, timeout=30)
    check("the verify listener checks the original request of a subrequest",
          response.status_code == 200 and response.headers.get("X-Apig-App-Id") == APP_ID,
          "%d" % response.status_code)
    headers["X-Original-URI"] = original.uri.replace("a=1", "a=2")
    response = requests.head("http://%s/_apig_verify" % VERIFY, headers=headers, timeout=30)
    check("and refuses another original request", response.status_code == 401,
          "%d" % response.status_code)

    tampered = payload.replace(b"2", b"9")
    refused("a tampered body", send(post, body=tampered), INVALID)
    refused("a tampered query", send(get, uri=get.uri.replace("a=1", "a=2")), INVALID)
    refused("a tampered path", send(get, uri=get.uri.replace("/orders/7", "/orders/8")), INVALID)
    refused("a wrong secret", send(signed("GET", "/orders", secret=SECRET + "x")), INVALID)
    refused("an unknown key", send(signed("GET", "/orders", key="no-such-app-key")), INVALID)

    now = datetime.utcnow()
    refused("a date 16 minutes old",
            send(signed("GET", "/orders", at=now - timedelta(minutes=16))), DATE)
    refused("a date 16 minutes ahead",
            send(signed("GET", "/orders", at=now + timedelta(minutes=16))), DATE)
    refused("no date", send(get, drop=("X-Sdk-Date",)), DATE)
    header = get.header_params["Authorization"]
    refused("a malformed Authorization",
            send(get, replace={"Authorization": header.replace(", Signature=", ",Signature=")}),
            MALFORMED)
    refused("another algorithm",
            send(get, replace={"Authorization": header.replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")}),
            "Incorrect app authentication information: signature algorithm not supported")


def main():
    global GATEWAY, VERIFY, APP_ID, KEY, SECRET
    import os
    GATEWAY = os.environ["APIG_GATEWAY"]
    VERIFY = os.environ.get("APIG_VERIFY", GATEWAY)
    APP_ID = os.environ["APIG_APP_ID"]
    KEY = os.environ["APIG_APP_KEY"]
    SECRET = os.environ["APIG_APP_SECRET"]
    mode = sys.argv[1]
    if mode == "accept":
        accept()
    elif mode == "refused":
        refused("a GET with this key and secret", send(signed("GET", "/orders")), INVALID)
    elif mode == "get":
        passed("a GET with this key and secret", send(signed("GET", "/orders")))
    else:
        raise SystemExit("unknown mode " + mode)
    if FAILED:
        print("%d checks failed" % len(FAILED))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
