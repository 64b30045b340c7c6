"""Drives Debian's cloud-init (its AliYun datasource and its EC2-style
metadata helpers) against ecs-emulator's metadata service.

Usage (as root, inside the network namespace where the emulator serves
http://100.100.100.200 and its API/control at 100.100.100.201:80, with the
namespace's /sys so that cloud-init sees the hot-plugged NICs):

    ip netns exec NS /usr/bin/python3 ci_check.py READY_JSON

Only the DMI platform check is faked (there is no "Alibaba Cloud ECS"
product name in a namespace); everything else is cloud-init's own code
talking HTTP to the emulator.

Checks:
- normal mode: DataSourceAliYun.get_data() crawls /2016-01-01/…; its
  instance-id, hostname, public keys, user-data and metadata region-id are
  the scenario's; the network configuration it renders for the primary NIC
  and the attached ENI is recorded and asserted.
- hardened-only mode: the same datasource (22.4.2 sends no token) gives up,
  as Alibaba documents for cloud-init older than 23.2.2; cloud-init's own
  helpers with the token (what newer cloud-init does: PUT latest/api/token,
  X-aliyun-ecs-metadata-token on every read) read the same metadata,
  user-data and vendor-data, and meta-data/all decodes to the crawled tree.
Prints one line per check and ends with "cloudinit-compat: N passed, M failed".
"""

import json
import logging
import os
import sys
import tempfile
import time
import urllib.request

from cloudinit import distros, helpers, url_helper
from cloudinit.sources import DataSourceAliYun as ay
from cloudinit.sources import DataSourceEc2 as ec2ds
from cloudinit.sources.helpers import ec2

READY = json.load(open(sys.argv[1]))
CONTROL = "http://100.100.100.201:80/_emulator"
MD = "http://100.100.100.200"
VERSION = "2016-01-01"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
PASSED = 0
FAILED = 0


def ok(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"ok: {what}")
    else:
        FAILED += 1
        print(f"FAIL: {what}")


def control(method, path, body=None):
    req = urllib.request.Request(
        CONTROL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


CAPTURE = Captured()
logging.getLogger().addHandler(CAPTURE)
logging.getLogger().setLevel(logging.DEBUG)

# The one fake: the DMI product name that identifies an ECS instance.
_real_read_dmi = ay.dmi.read_dmi_data


def _dmi(key):
    return ay.ALIYUN_PRODUCT if key == "system-product-name" else _real_read_dmi(key)


ay.dmi.read_dmi_data = _dmi


def datasource(max_wait):
    tmp = tempfile.mkdtemp(prefix="cloudinit-compat.")
    paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp + "/run"})
    distro = distros.fetch("debian")("debian", {}, paths)
    cfg = {"datasource": {"AliYun": {"timeout": 2, "max_wait": max_wait}}}
    return ay.DataSourceAliYun(cfg, distro, paths)


def expected():
    state = control("GET", "/state")
    inst = state["instances"][READY["instance_id"]]
    enis = {e["id"]: e for e in state["enis"]}
    return inst, enis, state


def kernel_macs():
    """MAC → interface name of this namespace's NICs."""
    names = {}
    for name in os.listdir("/sys/class/net"):
        try:
            names[open(f"/sys/class/net/{name}/address").read().strip()] = name
        except OSError:
            pass
    return names


def expected_network(enis, instance_id):
    """What cloud-init 22.4.2 renders from Alibaba metadata: per NIC in the
    metadata dhcp4 (dhcp6 too when the MAC has ipv6s), route metric
    100 × (its position among the NICs sorted by MAC), no static addresses
    (it reads only the EC2 keys local-ipv4s/ipv6s for those), names from
    the kernel."""
    attached = sorted(
        (e for e in enis.values() if e.get("instance_id") == instance_id and e["status"] == "InUse"),
        key=lambda e: e["mac"],
    )
    names = kernel_macs()
    out = {"version": 2, "ethernets": {}}
    for idx, e in enumerate(attached, start=1):
        name = names[e["mac"]]
        cfg = {
            "dhcp4": True,
            "dhcp4-overrides": {"route-metric": idx * 100},
            "dhcp6": False,
            "match": {"macaddress": e["mac"]},
            "set-name": name,
        }
        if e.get("ipv6s"):
            cfg["dhcp6"] = True
            cfg["dhcp6-overrides"] = {"route-metric": idx * 100}
        out["ethernets"][name] = cfg
    return out


def token():
    r = url_helper.readurl(
        f"{MD}/latest/api/token",
        headers={TOKEN_HEADER + "-ttl-seconds": "21600"},
        request_method="PUT",
        timeout=5,
    )
    return r.contents.decode()


def decode_all(d):
    """What newer cloud-init does with meta-data/all: every leaf through the
    same decoder the crawler uses."""
    if isinstance(d, dict):
        return {k: decode_all(v) for k, v in d.items()}
    if isinstance(d, list):
        return [decode_all(x) for x in d]
    return ec2.MetadataLeafDecoder()("", d)


def prune(d):
    if isinstance(d, dict):
        return {k: prune(v) for k, v in d.items() if not (isinstance(v, dict) and not prune(v))}
    return d


def main():
    inst, enis, state = expected()
    eni1 = [e for e in enis.values() if e["id"] != READY["primary_eni_id"]
            and e.get("instance_id") == inst["id"]]
    ok(len(eni1) == 1 and eni1[0]["status"] == "InUse",
       f"a secondary ENI is attached to {inst['id']}: {[e['id'] for e in eni1]}")
    ok(inst.get("key_pairs") and inst.get("user_data") and inst.get("vendor_data"),
       "the scenario gives the instance key pairs, user-data and vendor-data")
    want_keys = sorted(k.strip() for k in inst.get("key_pairs", {}).values())
    zone = [e for e in enis.values() if e["id"] == READY["primary_eni_id"]][0]["zone_id"]

    # The emulator plugs the NICs and publishes the MACs right after its
    # ready line: wait for both before cloud-init looks.
    macs = sorted(e["mac"] for e in enis.values()
                  if e.get("instance_id") == inst["id"] and e["status"] == "InUse")
    deadline = time.monotonic() + 20
    while True:
        plugged = sorted(m for m in macs if m in kernel_macs())
        listed = url_helper.readurl(f"{MD}/latest/meta-data/network/interfaces/macs/", retries=0).contents
        listed = sorted(m.rstrip("/") for m in listed.decode().splitlines())
        if plugged == macs and listed == macs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ok(plugged == macs and listed == macs,
       f"NICs {macs} plugged in the namespace ({plugged}) and listed in metadata ({listed})")

    # --- normal mode: the datasource as Debian ships it -------------------
    control("PATCH", "/settings", {"metadata": {"hardened_only": False}})
    ds = datasource(max_wait=10)
    got = ds.get_data()
    ok(got is True, f"[normal] DataSourceAliYun.get_data() crawled {MD}/{VERSION}/: {got}")
    if not got:
        print("\n".join(l for l in CAPTURE.lines if "100.100.100.200" in l)[-3000:])
        return
    ok(ds.metadata_address == MD, f"[normal] metadata address {ds.metadata_address}")
    ok(ds._crawled_metadata.get("_metadata_api_version") == VERSION,
       f"[normal] API version {ds._crawled_metadata.get('_metadata_api_version')}")
    ok(ds.get_instance_id() == inst["id"], f"[normal] instance-id {ds.get_instance_id()}")
    host = ds.get_hostname()
    ok(host.hostname == inst["hostname"] and not host.is_default, f"[normal] hostname {host}")
    ok(ds.metadata.get("region-id") == inst["region_id"] and ds.metadata.get("zone-id") == zone,
       f"[normal] region-id {ds.metadata.get('region-id')}, zone-id {ds.metadata.get('zone-id')}")
    # 22.4.2 derives region/availability_zone from EC2's placement/ keys,
    # which Alibaba's metadata does not have: both are None.
    ok(ds.region is None and ds.availability_zone is None,
       f"[normal] DataSourceEc2.region/availability_zone (EC2 placement/ keys) stay None: "
       f"{ds.region!r} {ds.availability_zone!r}")
    ok(sorted(ds.get_public_ssh_keys()) == want_keys, f"[normal] public keys {ds.get_public_ssh_keys()}")
    ud = ds.get_userdata_raw()
    ok(ud == inst["user_data"].encode(), f"[normal] user-data {ud!r}")
    ok(ds.vendordata_raw is None,
       f"[normal] 22.4.2's datasource does not read vendor-data: {ds.vendordata_raw!r}")
    # Newer cloud-init reads it with url_helper.read_file_or_url, as here.
    vd = url_helper.read_file_or_url(f"{MD}/{VERSION}/vendor-data").contents
    ok(vd == inst["vendor_data"].encode(), f"[normal] vendor-data read with cloud-init's url_helper {vd!r}")
    ok("AccessKeySecret" not in json.dumps(ds.metadata), "[normal] no RAM credentials crawled")
    net = ds.network_config
    print("rendered network config: " + json.dumps(net, sort_keys=True))
    want_net = expected_network(enis, inst["id"])
    ok(net == want_net, f"[normal] network config as expected: {json.dumps(want_net, sort_keys=True)}")
    eni_mac = eni1[0]["mac"] if eni1 else None
    eni_cfg = [c for c in net["ethernets"].values() if c["match"]["macaddress"] == eni_mac]
    ok(len(eni_cfg) == 1 and eni_cfg[0]["dhcp4"] and eni_cfg[0]["dhcp6"]
       and eni_cfg[0]["dhcp4-overrides"] == {"route-metric": 200} and "addresses" not in eni_cfg[0],
       f"[normal] the attached ENI {eni_mac}: dhcp4 + dhcp6 at metric 200, no static addresses")
    crawled_normal = ds.metadata

    # --- hardened-only mode ---------------------------------------------
    control("PATCH", "/settings", {"metadata": {"hardened_only": True}})
    CAPTURE.lines.clear()
    ds = datasource(max_wait=2)
    got = ds.get_data()
    ok(got is False, f"[hardened] 22.4.2's datasource (no token) gives up: get_data() = {got}")
    ok(any("403" in l for l in CAPTURE.lines), "[hardened] it was answered 403 Forbidden")

    tok = token()
    ok(len(tok) > 0, "[hardened] PUT /latest/api/token answered a token")

    def headers_cb(url):
        return {TOKEN_HEADER: tok}

    md = ec2.get_instance_metadata(VERSION, MD, headers_cb=headers_cb, retries=0)
    ok(md.get("instance-id") == inst["id"] and md.get("hostname") == inst["hostname"]
       and md.get("region-id") == inst["region_id"],
       f"[hardened] crawl with token: {md.get('instance-id')} {md.get('hostname')} {md.get('region-id')}")
    ok(sorted(ay.parse_public_keys(md.get("public-keys", {}))) == want_keys, "[hardened] public keys")
    ok(md == crawled_normal, "[hardened] the crawl with token equals the tokenless one")
    ud = ec2.get_instance_userdata(VERSION, MD, headers_cb=headers_cb, retries=0)
    ok(ud == inst["user_data"].encode(), f"[hardened] user-data {ud!r}")
    vd = url_helper.read_file_or_url(f"{MD}/{VERSION}/vendor-data", headers_cb=headers_cb).contents
    ok(vd == inst["vendor_data"].encode(), f"[hardened] vendor-data {vd!r}")
    raw = url_helper.read_file_or_url(f"{MD}/{VERSION}/meta-data/all", headers_cb=headers_cb).contents
    all_md = decode_all(json.loads(raw))
    ok(prune(all_md) == prune(md), "[hardened] meta-data/all, decoded leaf by leaf, equals the crawl")
    net = ec2ds.convert_ec2_metadata_network_config(md["network"])
    ok(net == expected_network(enis, inst["id"]), "[hardened] same network config from the token crawl")
    try:
        url_helper.readurl(f"{MD}/{VERSION}/meta-data/instance-id", headers={TOKEN_HEADER: "aaa"}, retries=0)
        ok(False, "[hardened] a wrong token is refused")
    except url_helper.UrlError as e:
        ok(e.code == 401, f"[hardened] a wrong token is refused: {e.code}")
    control("PATCH", "/settings", {"metadata": {"hardened_only": False}})


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # any crash is a failure, reported as such
        import traceback

        traceback.print_exc()
        ok(False, f"unexpected {type(e).__name__}: {e}")
    print(f"cloudinit-compat: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
