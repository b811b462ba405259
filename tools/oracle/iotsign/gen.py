#!/usr/bin/env python3
"""Known-answer vectors for signerd's Tencent, Huawei IoTDA and OneNET signing.

A second implementation, independent of the Go code in signing/: written from
the project's platform notes (PLATFORMS.md, issue 14) and the platforms' own
documentation and sample code (cited below), with the Python standard library
only. It writes

    {out}/signing/tencent/testdata/vectors.json
    {out}/signing/huawei/testdata/vectors.json
    {out}/signing/onenet/testdata/vectors.json

where {out} is the repository root unless --out says otherwise. The output is
a pure function of this file: random inputs come from fixed seeds, so a Go test
can run the script into a temporary directory and compare byte for byte with
the committed files.

Usage: python3 tools/oracle/iotsign/gen.py [--out DIR]
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import random
import string
import urllib.parse

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS

# Lifetimes signerd chose for the expiring logins (seconds).
DEFAULT_TTL = 3600
MIN_TTL = 60
MAX_TTL = 2592000

# Issue times (Unix seconds): the epoch, just after, ordinary times, the
# 32-bit limit and far in the future.
ISSUE_TIMES = [0, 1, 1537255523, 1700000000, 1732845600, 2147483647, 4102444799, 253402300799 - MAX_TTL]


def rand_string(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------
# Tencent IoT Hub / IoT Explorer.
#
# Rules: PLATFORMS.md "Tencent" and the MQTT access guide
# (https://cloud.tencent.com/document/product/1081/102803): username is
# ${productId}${deviceName};${sdkappid};${connid};${expiry} with sdkappid
# 12010126; the raw key is base64-decode(devicePsk); token = HMAC-SHA1 or
# HMAC-SHA256 of the username in lower-case hex; password "${token};hmacsha256"
# (or hmacsha1). The guide's Python sample does exactly this:
#     token = hmac.new(secret_key, data_to_sign, digestmod=hashlib.sha256).hexdigest()
# Names: device names [a-zA-Z0-9:_-]{1,48} (CreateDevice,
# https://cloud.tencent.com/document/api/634/71950); product IDs are 10
# characters of upper-case letters and digits (every documented example).
# ---------------------------------------------------------------------------

TENCENT_METHODS = {"HMAC_SHA256": ("sha256", "hmacsha256"), "HMAC_SHA1": ("sha1", "hmacsha1")}


def tencent_case(product_id, device_name, psk_raw, conn_id, method, issued_at, ttl):
    expiry = issued_at + (ttl if ttl else DEFAULT_TTL)
    client_id = product_id + device_name
    username = "{};12010126;{};{}".format(client_id, conn_id, expiry)
    digest, suffix = TENCENT_METHODS[method]
    token = hmac.new(psk_raw, username.encode("utf-8"), digestmod=digest).hexdigest()
    return {
        "input": {
            "productId": product_id,
            "deviceName": device_name,
            "devicePsk": b64(psk_raw),
            "connId": conn_id,
            "signMethod": method,
            "issuedAt": issued_at,
            "ttlSeconds": ttl,
        },
        "expect": {
            "clientId": client_id,
            "username": username,
            "password": "{};{}".format(token, suffix),
            "expiresAt": expiry,
        },
    }


def tencent_vectors():
    rng = random.Random(0x7E1CE1)
    name_chars = ALNUM + ":_-"
    names = [
        "a",  # shortest
        "Z",
        "0",
        ":",
        "_",
        "-",
        "dev-001",
        "dev_001",
        "dev:001",
        "a:b_c-d",
        "x" * 48,  # longest
        rand_string(rng, name_chars, 48),
        "-_:" * 16,
    ]
    for _ in range(12):
        names.append(rand_string(rng, name_chars, rng.randint(1, 48)))
    cases = []
    for i, name in enumerate(names):
        for method in ("HMAC_SHA256", "HMAC_SHA1"):
            product_id = rand_string(rng, UPPER + DIGITS, 10)
            psk_len = rng.choice([1, 14, 16, 24, 32, 48])
            psk_raw = bytes(rng.getrandbits(8) for _ in range(psk_len))
            conn_id = rand_string(rng, ALNUM, 5)
            issued_at = ISSUE_TIMES[(i * 2 + len(method)) % len(ISSUE_TIMES)]
            ttl = rng.choice([0, MIN_TTL, MAX_TTL, 3600, 600, 86400, rng.randint(MIN_TTL, MAX_TTL)])
            cases.append(tencent_case(product_id, name, psk_raw, conn_id, method, issued_at, ttl))
    # Fixed product IDs at the edges of the alphabet.
    cases.append(tencent_case("AAAAAAAAAA", "a", b"\x00", "aaaaa", "HMAC_SHA256", 1700000000, 0))
    cases.append(tencent_case("ZZZZZZZZZZ", "Z" * 48, b"\xff" * 48, "ZZZZZ", "HMAC_SHA1", 1700000000, MAX_TTL))
    cases.append(tencent_case("0123456789", "9", b"0123456789abcdef", "01234", "HMAC_SHA256", 1700000000, MIN_TTL))
    return cases


# ---------------------------------------------------------------------------
# Huawei Cloud IoTDA.
#
# Rules: PLATFORMS.md "Huawei" and the device connection authentication API
# (https://support.huaweicloud.com/api-iothub/iot_06_v5_3009.html):
# timestamp is the UTC time as YYYYMMDDHH; ClientId
# {device_id}_0_{0|1}_{timestamp} (0: timestamp not checked, 1: checked);
# Username = device_id; Password = hex(HMAC-SHA256(key=timestamp, msg=secret)).
# device_id: at most 128 letters, digits, '_' and '-'.
# signerd reports the expiry of a checked login as the end of the hour its
# timestamp names, and 0 (none) for an unchecked one.
# ---------------------------------------------------------------------------


def huawei_case(device_id, secret, issued_at, check):
    t = datetime.datetime.fromtimestamp(issued_at, tz=datetime.timezone.utc)
    timestamp = t.strftime("%Y%m%d%H")
    hour_start = datetime.datetime(t.year, t.month, t.day, t.hour, tzinfo=datetime.timezone.utc)
    expires_at = int(hour_start.timestamp()) + 3600 if check else 0
    password = hmac.new(timestamp.encode("utf-8"), secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return {
        "input": {
            "deviceId": device_id,
            "secret": secret,
            "issuedAt": issued_at,
            "checkTimestamp": check,
        },
        "expect": {
            "clientId": "{}_0_{}_{}".format(device_id, 1 if check else 0, timestamp),
            "username": device_id,
            "password": password,
            "timestamp": timestamp,
            "expiresAt": expires_at,
        },
    }


def huawei_vectors():
    rng = random.Random(0x4A3E1)
    id_chars = ALNUM + "_-"
    ids = [
        "a",
        "_",
        "-",
        "D39564861q3gDa",  # the documentation's clientId example
        "6203cc94c7fb24029b110408_88888888",  # "{product_id}_{node_id}", the usual form
        "x" * 128,
        rand_string(rng, id_chars, 128),
        "_-" * 64,
    ]
    for _ in range(10):
        ids.append(rand_string(rng, id_chars, rng.randint(1, 128)))
    secret_chars = ALNUM + "!@#$%^&*()-_=+;:,.<>/?"
    times = ISSUE_TIMES + [1532454980, 1744592400, 1744595999, 1744596000]
    cases = []
    for i, device_id in enumerate(ids):
        for check in (True, False):
            secret = rand_string(rng, secret_chars, rng.randint(1, 64))
            issued_at = times[(i + (7 if check else 0)) % len(times)]
            cases.append(huawei_case(device_id, secret, issued_at, check))
    # The documentation's worked password: secret 12345678, timestamp
    # 2025041401 (issued at 2025-04-14T01:00:00Z).
    cases.append(huawei_case("D39564861q3gDa", "12345678", 1744592400, True))
    return cases


# ---------------------------------------------------------------------------
# OneNET (studio products).
#
# Rules: PLATFORMS.md "OneNET" and the token algorithm
# (https://open.iot.10086.cn/doc/multiprotocol/book/manual/auth/token.html):
# StringForSignature = et + "\n" + method + "\n" + res + "\n" + version;
# sign = base64(hmac_<method>(base64decode(key), utf-8(StringForSignature)));
# token = version=2018-10-31&res=...&et=...&method=...&sign=... with the values
# URL-encoded. The documentation's Python sample encodes with
# urllib.parse.quote(value, safe=''), as here.
# MQTT: clientId = device name, username = product ID, password = token.
# ---------------------------------------------------------------------------

ONENET_METHODS = {"SHA256": "sha256", "SHA1": "sha1", "MD5": "md5"}


def onenet_case(product_id, device_name, key_raw, method, issued_at, ttl):
    et = issued_at + (ttl if ttl else DEFAULT_TTL)
    name = ONENET_METHODS[method]
    res = "products/{}/devices/{}".format(product_id, device_name)
    version = "2018-10-31"
    string_for_signature = "{}\n{}\n{}\n{}".format(et, name, res, version)
    sign = base64.b64encode(hmac.new(key_raw, string_for_signature.encode("utf-8"), digestmod=name).digest()).decode("ascii")
    token = "version={}&res={}&et={}&method={}&sign={}".format(
        urllib.parse.quote(version, safe=""),
        urllib.parse.quote(res, safe=""),
        et,
        urllib.parse.quote(name, safe=""),
        urllib.parse.quote(sign, safe=""),
    )
    return {
        "input": {
            "productId": product_id,
            "deviceName": device_name,
            "deviceKey": b64(key_raw),
            "signMethod": method,
            "issuedAt": issued_at,
            "ttlSeconds": ttl,
        },
        "expect": {
            "clientId": device_name,
            "username": product_id,
            "password": token,
            "expiresAt": et,
            "stringForSignature": string_for_signature,
        },
    }


def onenet_vectors():
    rng = random.Random(0x0E4E7)
    name_chars = ALNUM + "_-"
    names = ["a", "_", "-", "test", "mydev", "ceshi-0003", "DEV867435057486946", "x" * 64, "_-" * 32]
    for _ in range(8):
        names.append(rand_string(rng, name_chars, rng.randint(1, 64)))
    product_ids = [
        lambda: rand_string(rng, ALNUM, 10),  # studio: "Ck2AF9QD2K"
        lambda: rand_string(rng, DIGITS, rng.randint(1, 12)),  # legacy numeric: "123123"
        lambda: rand_string(rng, ALNUM, rng.randint(1, 32)),
    ]
    cases = []
    for i, name in enumerate(names):
        for method in ("SHA256", "SHA1", "MD5"):
            product_id = product_ids[(i + len(method)) % len(product_ids)]()
            key_raw = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 16, 32, 48, 64])))
            issued_at = ISSUE_TIMES[(i + len(method)) % len(ISSUE_TIMES)]
            ttl = rng.choice([0, MIN_TTL, MAX_TTL, 3600, rng.randint(MIN_TTL, MAX_TTL)])
            cases.append(onenet_case(product_id, name, key_raw, method, issued_at, ttl))
    cases.append(onenet_case("a", "a", b"\x00", "MD5", 0, MIN_TTL))
    cases.append(onenet_case("Z" * 32, "z" * 64, b"\xff" * 64, "SHA256", 1700000000, MAX_TTL))
    # Key from the documentation's own token samples, on a device.
    key = base64.b64decode("KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=")
    for method in ("SHA256", "SHA1", "MD5"):
        cases.append(onenet_case("Ck2AF9QD2K", "test", key, method, 1537251923, 0))
    return cases


def write(out, platform, cases):
    path = os.path.join(out, "signing", platform, "testdata", "vectors.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(json.dumps(cases, indent=2, ensure_ascii=True))
        f.write("\n")


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=root, help="directory to write signing/*/testdata/vectors.json under")
    args = parser.parse_args()
    write(args.out, "tencent", tencent_vectors())
    write(args.out, "huawei", huawei_vectors())
    write(args.out, "onenet", onenet_vectors())


if __name__ == "__main__":
    main()
