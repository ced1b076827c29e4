"""Loads the apps of the signature bench and writes the header lines wrk sends.

  prepare.py apps ADMIN_PORT TOKEN N DIR     N apps with one AppCode each -> DIR/apps.json
  prepare.py sign GATEWAY_HOST DIR           DIR/{appcode,signed,invalid,unknown}.txt, the
                                             signatures made now (valid for 15 minutes)

`sign` uses the official SDK core's Signer (huaweicloudsdkcore), as a client would.
"""

import http.client
import json
import random
import string
import sys

P = "00000000000000000000000000000001"
BASE = "/v2/%s/apigw/instances/%s" % (P, P)


def apps(port, token, n, out):
    c = http.client.HTTPConnection("127.0.0.1", int(port))
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}

    def call(method, path, body=None):
        c.request(method, BASE + path, json.dumps(body) if body is not None else "", headers)
        r = c.getresponse()
        data = r.read()
        assert r.status in (200, 201), (r.status, data[:200])
        return json.loads(data)

    made = []
    for i in range(int(n)):
        app = call("POST", "/apps", {"name": "sig_bench_%d" % i})
        code = call("PUT", "/apps/%s/app-codes" % app["id"])
        made.append({"key": app["app_key"], "secret": app["app_secret"],
                     "code": code["app_code"]})
    with open(out + "/apps.json", "w") as f:
        json.dump(made, f)


def sign(host, out):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    def signed(key, secret):
        req = SdkRequest(method="GET", schema="http", host=host, resource_path="/", query_params=[],
                         header_params={})
        Signer(BasicCredentials(key, secret)).sign(req)
        h = req.header_params
        return "Authorization: %s\tX-Sdk-Date: %s" % (h["Authorization"], h["X-Sdk-Date"])

    def rand(n):
        return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(n))

    made = json.load(open(out + "/apps.json"))
    lines = {
        "appcode": ["X-Apig-AppCode: " + a["code"] for a in made],
        "signed": [signed(a["key"], a["secret"]) for a in made],
        "invalid": ["X-Apig-AppCode: " + rand(64) for _ in range(1024)],
        "unknown": [signed(rand(32).lower(), rand(64)) for _ in range(1024)],
    }
    for name, body in lines.items():
        with open("%s/%s.txt" % (out, name), "w") as f:
            f.write("\n".join(body) + "\n")


if __name__ == "__main__":
    {"apps": apps, "sign": sign}[sys.argv[1]](*sys.argv[2:])
