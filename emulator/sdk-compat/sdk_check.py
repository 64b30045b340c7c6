"""Drives a running ecs-emulator with the official Alibaba Cloud Python SDK.

Usage: sdk_check.py READY_JSON

READY_JSON holds the one JSON line `ecs-emulator serve` prints when ready.
Checks, once with the SDK's default signature (V3, ACS3-HMAC-SHA256) and
once with signature_algorithm='v2': Describe, Attach, Detach, and that
documented errors arrive as SDK exceptions with the right code and HTTP
status; then that alibabacloud-credentials' ECS RAM role provider gets
credentials from the emulator's metadata service (normal and hardened
mode, and with the provider's IMDSv1 disabled) and that those STS
credentials work against the API with both signature versions.
Exits non-zero on the first failure.
"""

import json
import sys
import time
import urllib.request

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

INFO = json.load(open(sys.argv[1]))
API_HOST = INFO["api_url"].removeprefix("http://").rstrip("/")
REGION = INFO["region_id"]
INSTANCE = INFO["instance_id"]
ENIS = {e["id"]: e for e in INFO["enis"]}
AVAILABLE_SAME_ZONE = [
    e["id"] for e in INFO["enis"]
    if e["status"] == "Available" and e["zone_id"] == ENIS[INFO["primary_eni_id"]]["zone_id"]
    and e["vpc_id"] == ENIS[INFO["primary_eni_id"]]["vpc_id"]
]
OTHER_ZONE = [e["id"] for e in INFO["enis"] if e["zone_id"] != ENIS[INFO["primary_eni_id"]]["zone_id"]][0]
OTHER_VPC = [e["id"] for e in INFO["enis"] if e["vpc_id"] != ENIS[INFO["primary_eni_id"]]["vpc_id"]][0]
CHECKS = 0


def ok(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def control(method, path, body=None):
    req = urllib.request.Request(
        INFO["control_url"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def client(algorithm, key=None, secret=None, token=None):
    cfg = Config(
        access_key_id=key or INFO["access_key_id"],
        access_key_secret=secret or INFO["access_key_secret"],
        security_token=token,
        endpoint=API_HOST,
        protocol="http",
        region_id=REGION,
    )
    if algorithm:
        cfg.signature_algorithm = algorithm
    return Client(cfg)


def expect_error(fn, code, status, what):
    try:
        fn()
    except Exception as e:  # the SDK's own exception classes
        got_code = getattr(e, "code", None)
        got_status = getattr(e, "status_code", None) or getattr(e, "statusCode", None)
        ok(got_code == code and (status is None or got_status == status),
           f"{what}: {type(e).__name__} code={got_code} status={got_status} (want {code} {status})")
        return
    ok(False, f"{what}: no exception (want {code})")


def describe(c, eni):
    r = c.describe_network_interface_attribute(
        ecs.DescribeNetworkInterfaceAttributeRequest(region_id=REGION, network_interface_id=eni))
    return r.body


def wait_status(c, eni, status, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if describe(c, eni).status == status:
            return True
        time.sleep(0.1)
    return False


def api_round(name, algorithm, eni):
    c = client(algorithm)
    body = describe(c, eni)
    ok(body.network_interface_id == eni and body.status == "Available", f"[{name}] describe {eni}: {body.status}")
    ok(body.mac_address == ENIS[eni]["mac"], f"[{name}] MacAddress {body.mac_address}")
    ok(len(body.private_ip_sets.private_ip_set) >= 1, f"[{name}] PrivateIpSets parsed")
    lst = c.describe_network_interfaces(ecs.DescribeNetworkInterfacesRequest(
        region_id=REGION, instance_id=INSTANCE, max_results=100)).body
    ids = [s.network_interface_id for s in lst.network_interface_sets.network_interface_set]
    ok(INFO["primary_eni_id"] in ids, f"[{name}] DescribeNetworkInterfaces InstanceId filter: {ids}")
    r = c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=eni, instance_id=INSTANCE))
    ok(r.status_code == 200 and r.body.request_id, f"[{name}] attach {eni}: RequestId {r.body.request_id}")
    ok(describe(c, eni).status == "Attaching", f"[{name}] Attaching right after the call")
    ok(wait_status(c, eni, "InUse"), f"[{name}] becomes InUse")
    ok(describe(c, eni).instance_id == INSTANCE, f"[{name}] InstanceId set")
    expect_error(lambda: c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=eni, instance_id=INSTANCE)),
        "InvalidOperation.InvalidEniState", 400, f"[{name}] attach an InUse ENI")
    r = c.detach_network_interface(ecs.DetachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=eni, instance_id=INSTANCE))
    ok(r.status_code == 200, f"[{name}] detach {eni}")
    ok(wait_status(c, eni, "Available"), f"[{name}] back to Available")
    expect_error(lambda: describe(c, "eni-doesnotexist0"), "InvalidEniId.NotFound", 404,
                 f"[{name}] describe unknown ENI")
    expect_error(lambda: c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=OTHER_ZONE, instance_id=INSTANCE)),
        "InvalidOperation.AvailabilityZoneMismatch", 403, f"[{name}] attach ENI of another zone")
    expect_error(lambda: c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=OTHER_VPC, instance_id=INSTANCE)),
        "InvalidOperation.VpcMismatch", 403, f"[{name}] attach ENI of another VPC")
    expect_error(lambda: c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=eni, instance_id="i-doesnotexist0")),
        "InvalidEcsId.NotFound", 404, f"[{name}] attach to unknown instance")
    expect_error(lambda: c.attach_network_interface(ecs.AttachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=eni, instance_id="bad id")),
        "InvalidInstanceID.Malformed", 400, f"[{name}] malformed InstanceId")
    expect_error(lambda: c.detach_network_interface(ecs.DetachNetworkInterfaceRequest(
        region_id=REGION, network_interface_id=INFO["primary_eni_id"], instance_id=INSTANCE)),
        "InvalidOperation.DetachPrimaryEniNotAllowed", 403, f"[{name}] detach the primary ENI")
    bad = client(algorithm, secret="not-the-secret")
    expect_error(lambda: describe(bad, eni), "SignatureDoesNotMatch", 400, f"[{name}] wrong secret")
    nobody = client(algorithm, key="LTAInobody", secret="x")
    expect_error(lambda: describe(nobody, eni), "InvalidAccessKeyId.NotFound", 404, f"[{name}] unknown key")
    control("PATCH", "/settings", {"faults": {"actions": {"DescribeNetworkInterfaceAttribute": {"internal_error_rate": 1.0}}}})
    expect_error(lambda: describe(c, eni), "InternalError", 500, f"[{name}] injected InternalError")
    control("PATCH", "/settings", {"faults": {"actions": {"DescribeNetworkInterfaceAttribute": {"throttling_rate": 1.0}}}})
    expect_error(lambda: describe(c, eni), "Throttling", 400, f"[{name}] injected Throttling")
    control("PATCH", "/settings", {"faults": {"actions": None}})


def credentials_round():
    from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider

    md_host = INFO["metadata_url"].removeprefix("http://")
    # (emulator hardened_only, provider disable_imds_v1): normal mode, the
    # provider's IMDSv1-disabled mode, and hardened-only served to both.
    for hardened, disable_v1 in ((False, False), (False, True), (True, True), (True, False)):
        mode = f"hardened_only={hardened}, disable_imds_v1={disable_v1}"
        control("PATCH", "/settings", {"metadata": {"hardened_only": hardened}})
        p = EcsRamRoleCredentialsProvider(disable_imds_v1=disable_v1, async_update_enabled=False)
        # The provider has no public knob for the metadata host (it is the
        # constant 100.100.100.200); point its private attribute at the
        # emulator's loopback listener.
        p._EcsRamRoleCredentialsProvider__metadata_service_host = md_host
        creds = p.get_credentials()
        ok(creds.get_access_key_id().startswith("STS.") and creds.get_security_token(),
           f"ECS RAM role provider ({mode}) got {creds.get_access_key_id()}")
        # Those credentials, with each signature version.
        for name, algorithm in (("v3", None), ("v2", "v2")):
            c = client(algorithm, creds.get_access_key_id(), creds.get_access_key_secret(),
                       creds.get_security_token())
            ok(describe(c, INFO["primary_eni_id"]).status == "InUse",
               f"[{name}] STS credentials from metadata ({mode}) accepted")
            expect_error(lambda: describe(client(algorithm, creds.get_access_key_id(),
                                                 creds.get_access_key_secret(), "CAISforged"),
                                          INFO["primary_eni_id"]),
                         "InvalidSecurityToken.Malformed", 400, f"[{name}] forged security token ({mode})")
    control("PATCH", "/settings", {"metadata": {"hardened_only": False}})


def main():
    control("PATCH", "/settings", {"timing": {"attach_delay_ms": 300, "detach_delay_ms": 300}})
    control("DELETE", "/calls")
    api_round("v3", None, AVAILABLE_SAME_ZONE[0])
    calls = control("GET", "/calls")
    ok(calls and all(c["signature_version"] == "v3" for c in calls), "default SDK requests were V3-signed")
    control("DELETE", "/calls")
    api_round("v2", "v2", AVAILABLE_SAME_ZONE[1])
    calls = control("GET", "/calls")
    ok(calls and all(c["signature_version"] == "v2" for c in calls), "signature_algorithm='v2' requests were V2-signed")
    credentials_round()
    print(f"sdk-compat: all {CHECKS} checks passed")


if __name__ == "__main__":
    main()
