#!/usr/bin/env python3
"""Generate SDK-HMAC-SHA256 test vectors with the official Huawei Cloud Python SDK.

Run with the venv that has huaweicloudsdkcore==3.1.219 and huaweicloudsdkapig (the interop
test creates one under target/sdk-venv), from the crate root:

    target/sdk-venv/bin/python tests/sdk/gen_vectors.py

Every signature here is computed by the SDK's own ``Signer`` (nothing is reimplemented):
the canonical request, string to sign and signature are captured by thin wrappers around
the SDK's methods that call the originals and record what they return. Every request is
then really sent, by the SDK's own ``HttpClient`` (requests/urllib3), to a recording server
on 127.0.0.1, so ``path``, ``query`` and ``headers`` are exactly the bytes on the wire.

The date is fixed: bare-signer vectors pass ``X-Sdk-Date`` in, full-client vectors patch
the ``datetime`` name the signer module uses so ``utcnow()`` is fixed.

Output (beside this script): tests/sdk/vectors.json, read by tests/support/admin.rs (the
harness of tests/admin_*.rs) and by the unit tests of src/signature/. Under "vectors" the
SDK's requests; under "reference" the four of shared/sdk-hmac-sha256-vectors.txt (their SK is
not published), in the same shape.
"""

import ast
import base64
import datetime as _dt
import json
import logging
import os
import re
import socket
import threading

import huaweicloudsdkcore.signer.signer as signer_module
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exception_handler import DefaultExceptionHandler
from huaweicloudsdkcore.http.http_client import HttpClient
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkapig.v2 import (
    ApigClient,
    AppCodeCreate,
    CreateAppCodeAutoV2Request,
    CreateAppCodeV2Request,
    DeleteAppCodeV2Request,
    ListAppsV2Request,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_VECTORS = os.path.join(HERE, "..", "..", "..", "shared", "sdk-hmac-sha256-vectors.txt")

AK = "HPUAEXAMPLEAK0000001"
SK = "sKexampleSecretKey0123456789abcdefABCDEF"
# A second key pair whose SK is not ASCII, to pin down that the HMAC key is the SK's UTF-8 bytes.
AK2 = "AK-SECOND-PAIR"
SK2 = "sk-ünïcödé-秘密"
DATE = "20240102T030405Z"
FIXED_NOW = _dt.datetime(2024, 1, 2, 3, 4, 5)

# ---------------------------------------------------------------------------------------------
# Capture what the SDK's own signer computes.
CAPTURE = {}
_orig_canonical = Signer._process_canonical_request
_orig_sts = Signer._process_string_to_sign
_orig_sign = Signer._sign_string_to_sign


def _cap_canonical(self, request, signed_headers):
    out = _orig_canonical(self, request, signed_headers)
    CAPTURE["canonical_request"] = out
    return out


def _cap_sts(self, canonical_request, t):
    out = _orig_sts(self, canonical_request, t)
    CAPTURE["string_to_sign"] = out
    return out


def _cap_sign(self, string_to_sign, key):
    out = _orig_sign(self, string_to_sign, key)
    CAPTURE["signature"] = out
    return out


Signer._process_canonical_request = _cap_canonical
Signer._process_string_to_sign = _cap_sts
Signer._sign_string_to_sign = _cap_sign


class _FixedDatetime(_dt.datetime):
    """Only ``utcnow`` differs: the signer module calls it when no X-Sdk-Date is given."""

    @classmethod
    def utcnow(cls):
        return cls(FIXED_NOW.year, FIXED_NOW.month, FIXED_NOW.day,
                   FIXED_NOW.hour, FIXED_NOW.minute, FIXED_NOW.second)


signer_module.datetime = _FixedDatetime

# ---------------------------------------------------------------------------------------------
# A recording HTTP/1.1 server: keeps the raw request line, headers (in order, as bytes) and body.
WIRE = []


def _serve(sock):
    while True:
        conn, _ = sock.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, value = line.split(b":", 1)
            headers.append((name, value.strip(b" \t")))
        length = next((int(v) for n, v in headers if n.lower() == b"content-length"), 0)
        while len(body) < length:
            body += conn.recv(65536)
        WIRE.append({"request_line": lines[0], "headers": headers, "body": body})
        payload = b"{}"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n" + payload)
        conn.close()


_sock = socket.socket()
_sock.bind(("127.0.0.1", 0))
_sock.listen(8)
PORT = _sock.getsockname()[1]
threading.Thread(target=_serve, args=(_sock,), daemon=True).start()
ENDPOINT = "http://127.0.0.1:%d" % PORT

_http = HttpClient(HttpConfig.get_default_config(), None, DefaultExceptionHandler(),
                   logging.getLogger("gen_vectors"))

# ---------------------------------------------------------------------------------------------
VECTORS = []


def _record(name, description, ak, sk, given, expect="ok"):
    """Pair the last signing capture with the last request seen on the wire."""
    wire = WIRE[-1]
    method, target, _version = wire["request_line"].decode("ascii").split(" ")
    path, _, query = target.partition("?")
    body = wire["body"]
    # The SDK's canonical request and string to sign are str; they are hashed as UTF-8.
    VECTORS.append({
        "name": name,
        "description": description,
        "ak": ak,
        "sk": sk,
        "given_to_sdk": given,
        "method": method,
        "path": path,
        "query": query,
        "headers": [[n.decode("latin-1"), v.decode("utf-8")] for n, v in wire["headers"]],
        "body_b64": base64.b64encode(body).decode("ascii"),
        "body_utf8": body.decode("utf-8") if _is_utf8(body) else None,
        "canonical_request": CAPTURE["canonical_request"],
        "string_to_sign": CAPTURE["string_to_sign"],
        "signature": CAPTURE["signature"],
        "expect": expect,
    })
    CAPTURE.clear()


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def bare(name, description, method, resource_path, query_params, headers, body,
         ak=AK, sk=SK, expect="ok"):
    """Sign with the SDK's Signer directly and send with the SDK's HttpClient."""
    headers = dict(headers)
    headers.setdefault("X-Sdk-Date", DATE)
    given = {"resource_path": resource_path, "query_params": repr(query_params),
             "header_params": dict(headers), "body": repr(body)}
    req = SdkRequest(method=method, schema="http", host="127.0.0.1:%d" % PORT,
                     resource_path=resource_path, query_params=query_params,
                     header_params=headers, body=body)
    creds = BasicCredentials(ak, sk)
    req = Signer(creds).sign(req)
    _http.do_request_sync(req)
    _record(name, description, ak, sk, given, expect)


def full_client():
    client = (ApigClient.new_builder()
              .with_credentials(BasicCredentials(AK, SK, "proj1"))
              .with_endpoints([ENDPOINT]).build())
    p = dict(instance_id="inst1", app_id="app1")

    client.create_app_code_v2(CreateAppCodeV2Request(body=AppCodeCreate(
        app_code="GjOD3g80AABuuFeEJpVQADBlAjBh3UzC7W+gr4VJBB5BtJ4fdVOQoSvoji3gFxUDb5pWBz9wUcw9+8/bF"), **p))
    _record("client_post_create_app_code",
            "ApigClient.create_app_code_v2 at a plain http://127.0.0.1:PORT endpoint: JSON body, "
            "Host with port, default User-Agent", AK, SK, {"call": "create_app_code_v2"})

    client.create_app_code_auto_v2(CreateAppCodeAutoV2Request(**p))
    _record("client_put_auto_empty_body",
            "ApigClient.create_app_code_auto_v2: PUT without body (Content-Length: 0)",
            AK, SK, {"call": "create_app_code_auto_v2"})

    client.delete_app_code_v2(DeleteAppCodeV2Request(app_code_id="0123456789abcdef0123456789abcdef", **p))
    _record("client_delete_app_code", "ApigClient.delete_app_code_v2", AK, SK,
            {"call": "delete_app_code_v2"})

    client.list_apps_v2(ListAppsV2Request(instance_id="inst 1/ü", name="a b+c~d/é=&.x",
                                          precise_search="name", offset=0, limit=5))
    _record("client_get_list_apps_query",
            "ApigClient.list_apps_v2: query needing encoding, path parameter with space, / and "
            "non-ASCII (encoded by the client with quote(safe=''))", AK, SK, {"call": "list_apps_v2"})


def bare_vectors():
    bare("bare_get_query_mix",
         "GET with many query shapes: repeated key (separate tuples and a list), empty value, "
         "bool, int, space, +, ~, /, a literal %2F, =, &, non-ASCII; sorting is on the raw "
         "(decoded) strings, which differs from sorting the encoded forms ('.' < 'a' < '{')",
         "GET", "/v2/proj1/apigw/instances/inst1/apps",
         [("zeta", "last"), ("k", "b"), ("k", "."), ("k", "{"), ("k", "a"),
          ("empty", ""), ("flag", True), ("limit", 20),
          ("sp ace", "x y"), ("plus", "1+2"), ("tilde~", "~v~"), ("slash", "a/b"),
          ("pct", "a%2Fb"), ("eq", "a=b&c"), ("uni", "é✓"), ("list", ["z", "m", "a"])],
         {"Content-Type": "application/json"}, None)

    bare("bare_path_needs_encoding",
         "Path segments with encoded space, %2F (decoded before splitting, so it becomes a "
         "separator in the canonical URI), ~, UTF-8, %25, and characters quote() encodes",
         "GET", "/v2/proj1/apps/a%20b%2Fc~d%C3%A9%25%21%28%29*'/x",
         [], {"Content-Type": "application/json"}, None)

    bare("bare_path_trailing_slash",
         "Path already ending in / keeps a single trailing slash",
         "GET", "/v2/proj1/apps/", [], {"Content-Type": "application/json"}, None)

    bare("bare_path_root", "Root path", "GET", "/", [], {}, None)

    bare("bare_host_with_port_non_ascii_sk",
         "Explicit Host header with a port, minimal headers, SK with non-ASCII characters",
         "POST", "/v2/proj1/apigw/instances/inst1/apps/app1/app-codes", [],
         {"Host": "apig.example.com:8443", "Content-Type": "application/json"},
         b'{"app_code":"abc"}', ak=AK2, sk=SK2)

    bare("bare_header_whitespace_underscore_utf8",
         "Header values with surrounding whitespace (the SDK strips them before signing and "
         "sends the stripped value), a header with _ in its name (not signed), a UTF-8 value",
         "DELETE", "/v2/proj1/apigw/instances/inst1/apps/app1/app-codes/c1", [],
         {"Content-Type": "application/json", "X-Trace-Id": "  abc def \t",
          "X_Unsigned_Header": "not signed", "X-Note": "  café ü  "}, None)

    bare("bare_unsigned_payload",
         "Non-JSON Content-Type: the SDK adds X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD and uses "
         "it literally as the payload hash",
         "PUT", "/v2/proj1/upload", [], {"Content-Type": "application/octet-stream"},
         b"\x00\x01binary\xff\xfe")

    bare("bare_unsigned_payload_empty_body",
         "Non-JSON Content-Type, empty body: the header is sent but the payload hash is still "
         "the empty-body hash", "PUT", "/v2/proj1/upload", [],
         {"Content-Type": "text/plain"}, b"")

    bare("bare_content_sha256_non_ascii",
         "Caller-supplied X-Sdk-Content-Sha256 with non-ASCII: the SDK uses its latin-1 "
         "re-decoded form in the payload-hash line (double UTF-8 encoding). Canonical forms "
         "must match; verify() rejects it because it is neither UNSIGNED-PAYLOAD nor the body hash",
         "POST", "/v2/x", [], {"Content-Type": "application/json", "X-Sdk-Content-Sha256": "ünsigned"},
         b"{}", expect="PayloadHashMismatch")

    bare("bare_lowercase_method_and_headers",
         "The SDK upper-cases the method and lower-cases header names",
         "patch", "/v2/proj1/thing", [("a", "1")],
         {"content-type": "application/json;charset=utf-8", "x-project-id": "proj1"},
         '{"k": "v"}')


# ---------------------------------------------------------------------------------------------
# The four reference vectors (no SK): converted from their text form, in the shape of VECTORS.
def reference_vectors():
    text = open(REFERENCE_VECTORS, encoding="utf-8").read()
    out = []
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        title, _, rest = block.partition("\n")
        fields = {}
        headers = []
        in_headers = False
        for line in rest.splitlines():
            if line.startswith("  ") and in_headers:
                name, _, value = line.strip().partition(": ")
                headers.append([name, value])
                continue
            in_headers = False
            key, sep, value = line.partition(": ")
            if not sep:
                if line.strip() == "headers sent:":
                    in_headers = True
                continue
            fields[key] = value
        url = fields["url"]
        m = re.match(r"https?://([^/]+)(/[^?]*)(?:\?(.*))?$", url)
        body = ast.literal_eval(fields["body bytes (repr)"]) or b""
        out.append({
            "name": "reference_" + title.split()[0],
            "ak": "AKEXAMPLE1234567890",
            "sk": None,
            "method": fields["method"],
            "path": m.group(2),
            "query": m.group(3) or "",
            "headers": headers,
            "body_b64": base64.b64encode(body).decode("ascii"),
            "body_utf8": body.decode("utf-8") if _is_utf8(body) else None,
            "canonical_request": ast.literal_eval(fields["canonical request (repr)"]),
            "string_to_sign": ast.literal_eval(fields["string to sign (repr)"]),
            "signature": fields["independent HMAC"],
            "expect": "ok",
        })
    return out


# ---------------------------------------------------------------------------------------------
def main():
    full_client()
    bare_vectors()
    for v in VECTORS:
        # Every vector must carry the date we fixed, or the Rust tests' clock would be wrong.
        assert dict((n.lower(), val) for n, val in v["headers"])["x-sdk-date"] == DATE, v["name"]
    write_json(VECTORS, reference_vectors())
    print("wrote %d vectors (+%d reference)" % (len(VECTORS), len(reference_vectors())))


def write_json(vectors, reference):
    with open(os.path.join(HERE, "vectors.json"), "w", encoding="utf-8") as f:
        json.dump({"sdk": "huaweicloudsdkcore 3.1.219", "date": DATE, "vectors": vectors,
                   "reference": reference}, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
