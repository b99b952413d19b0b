"""boto3 against the Custodia gateway's S3 front: object round trips, a paginated listing
of 2,500 keys, conditional and ranged GETs, download_fileobj with parallel ranged reads.

Run by tests/tests/gateway_s3_clients.rs. Environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, BUCKET, PREFIX (a routed key prefix, e.g. `aoife@example.ie/boto3/`),
FILES (a directory holding `small.eml` and `medium.eml` written by the test), LIST_ETAGS
(`0` when the store omits ETags from listings), BIG (a file for `multipart`), MODE:
`main` (everything above, leaving the objects for the test to inspect), `delete`
(DeleteObjects of everything under PREFIX), `multipart` (upload_fileobj of BIG with 10
threads, download_file back, compared by SHA-256), `expect100` (an empty upload, then
another on the same connection, timed). Prints one JSON summary line on stdout; exits
non-zero on the first mismatch.
"""

import concurrent.futures
import hashlib
import io
import json
import os
import sys
import time

import boto3
import botocore.config
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
BUCKET = os.environ["BUCKET"]
PREFIX = os.environ["PREFIX"]
FILES = os.environ.get("FILES", "")
MODE = os.environ.get("MODE", "main")
# Whether the store puts ETags in listings (Garage and AWS do; s3s-fs 0.14 does not, and
# the gateway cannot list what the store did not say).
LIST_ETAGS = os.environ.get("LIST_ETAGS", "1") == "1"
LIST_KEYS = 2500

s3 = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    config=botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=32,
    ),
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def status_of(err):
    return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def list_body(i):
    n = (i * 37) % 1031  # 0 .. 1030 bytes, exact sizes checked in the listing
    unit = f"SECRET-BOTO-LIST-{i:05d}-".encode()
    return (unit * (n // len(unit) + 1))[:n]


def delete_all():
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        keys += [o["Key"] for o in page.get("Contents", [])]
    deleted = 0
    for i in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[i : i + 1000]]
        r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": batch})
        check(not r.get("Errors"), f"delete_objects errors: {r.get('Errors')}")
        deleted += len(r.get("Deleted", []))
    check(deleted == len(keys), f"deleted {deleted} of {len(keys)}")
    left = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
    check(left.get("KeyCount", 0) == 0, f"left after delete: {left.get('Contents')}")
    return {"deleted": deleted}


def main():
    small = open(os.path.join(FILES, "small.eml"), "rb").read()
    medium = open(os.path.join(FILES, "medium.eml"), "rb").read()
    out = {}

    # put / head / get / conditional / range / delete
    key = PREFIX + "small.eml"
    put = s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=small,
        ContentType="message/rfc822",
        Metadata={"folder": "INBOX"},
    )
    etag = put["ETag"]
    check(etag.strip('"').startswith("cx-"), f"opaque etag, got {etag}")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    check(head["ContentLength"] == len(small), f"head length {head['ContentLength']}")
    check(head["ContentType"] == "message/rfc822", f"head type {head['ContentType']}")
    check(head["Metadata"] == {"folder": "INBOX"}, f"head metadata {head['Metadata']}")
    check(head["ETag"] == etag, f"head etag {head['ETag']} != put {etag}")
    got = s3.get_object(Bucket=BUCKET, Key=key)
    check(got["Body"].read() == small, "get body")
    check(got["ETag"] == etag, "get etag")
    try:
        s3.get_object(Bucket=BUCKET, Key=key, IfNoneMatch=etag)
        check(False, "If-None-Match with the current ETag answered 200")
    except ClientError as e:
        check(status_of(e) == 304, f"If-None-Match: {status_of(e)} {e}")
        check(e.response["Error"]["Code"] == "304", f"If-None-Match code {e.response['Error']}")
    other = s3.get_object(Bucket=BUCKET, Key=key, IfNoneMatch='"cx-somethingelse"')
    check(other["Body"].read() == small, "If-None-Match with another ETag")
    try:
        s3.get_object(Bucket=BUCKET, Key=key, IfMatch='"cx-somethingelse"')
        check(False, "If-Match with another ETag answered 200")
    except ClientError as e:
        check(status_of(e) == 412, f"If-Match: {status_of(e)} {e}")
    rng = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=10-19")
    check(rng["Body"].read() == small[10:20], "range body")
    check(rng["ContentRange"] == f"bytes 10-19/{len(small)}", rng["ContentRange"])
    s3.delete_object(Bucket=BUCKET, Key=key)
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
        check(False, "head after delete answered 200")
    except ClientError as e:
        check(status_of(e) == 404, f"head after delete: {status_of(e)}")
    out["small"] = len(small)

    # upload_fileobj (one PUT: under 8 MiB) and download_fileobj, plain and as parallel
    # 1 MiB ranged GETs
    mkey = PREFIX + "medium.eml"
    s3.upload_fileobj(io.BytesIO(medium), BUCKET, mkey)
    buf = io.BytesIO()
    s3.download_fileobj(BUCKET, mkey, buf)
    check(buf.getvalue() == medium, "download_fileobj")
    ranged = TransferConfig(
        multipart_threshold=1 << 20, multipart_chunksize=1 << 20, max_concurrency=4
    )
    buf = io.BytesIO()
    s3.download_fileobj(BUCKET, mkey, buf, Config=ranged)
    check(buf.getvalue() == medium, "download_fileobj in ranged parts")
    out["medium_key"] = mkey

    # 2,500 keys, then paginated listings (V2 at two page sizes, V1 with markers)
    lprefix = PREFIX + "list/"
    names = [f"{lprefix}k{i:05d}" for i in range(LIST_KEYS)]

    def put_one(i):
        s3.put_object(Bucket=BUCKET, Key=names[i], Body=list_body(i))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put_one, range(LIST_KEYS)))
    want = {names[i]: len(list_body(i)) for i in range(LIST_KEYS)}
    for page_size in (1000, 700):
        seen = {}
        pages = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=lprefix, PaginationConfig={"PageSize": page_size}
        ):
            pages += 1
            contents = page.get("Contents", [])
            check(page["KeyCount"] == len(contents), f"KeyCount {page['KeyCount']}")
            check(len(contents) <= page_size, f"page of {len(contents)} > {page_size}")
            for o in contents:
                check(o["Key"] not in seen, f"{o['Key']} listed twice")
                seen[o["Key"]] = o["Size"]
                etag = o.get("ETag")
                check(etag is not None or not LIST_ETAGS, f"no ETag listed for {o['Key']}")
                check(etag is None or etag.strip('"').startswith("cx-"), f"listing etag {etag}")
        check(seen == want, f"V2 page size {page_size}: {len(seen)} keys, "
              f"{sum(1 for k in want if seen.get(k) != want[k])} wrong or missing")
        check(pages == -(-LIST_KEYS // page_size), f"{pages} pages of {page_size}")
        out[f"v2_pages_{page_size}"] = pages
    seen = {}
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=BUCKET, Prefix=lprefix, PaginationConfig={"PageSize": 900}
    ):
        for o in page.get("Contents", []):
            check(o["Key"] not in seen, f"V1: {o['Key']} listed twice")
            seen[o["Key"]] = o["Size"]
    check(seen == want, f"V1: {len(seen)} keys")
    top = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX, Delimiter="/")
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    check(prefixes == [lprefix], f"common prefixes {prefixes}")
    check([o["Key"] for o in top.get("Contents", [])] == [mkey], f"top {top.get('Contents')}")
    out["listed"] = len(seen)
    out["list_key"] = names[LIST_KEYS - 1]
    out["list_body_len"] = len(list_body(LIST_KEYS - 1))
    return out


def empty_put_then_put_on_one_connection():
    """An empty upload_fileobj, then another upload on the same pooled connection: seconds
    each. (botocore sends `Expect: 100-continue`; a server answering the empty PUT with a
    final 200 and no 100 leaves botocore reading the next response until the connection
    closes, 60 s later, unless the server closes that connection.)"""
    one = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, max_pool_connections=1, read_timeout=20,
            retries={"max_attempts": 1},
        ),
    )
    times = {}
    bodies = (("empty", b""), ("after_empty", b"SECRET-BOTO-AFTER-EMPTY"))
    # Two PUTs in a row (a GET in between would reset botocore's state).
    for name, body in bodies:
        started = time.monotonic()
        one.upload_fileobj(io.BytesIO(body), BUCKET, PREFIX + name)
        times[name] = round(time.monotonic() - started, 2)
    for name, body in bodies:
        got = one.get_object(Bucket=BUCKET, Key=PREFIX + name)["Body"].read()
        check(got == body, f"{name} read back")
    return times


def multipart():
    """upload_fileobj of BIG (default 8 MiB parts, 10 threads), then download_file in
    parallel ranges; sizes and SHA-256 must match."""
    big = os.environ["BIG"]
    key = PREFIX + "big.bin"
    cfg = TransferConfig(max_concurrency=10)
    started = time.monotonic()
    with open(big, "rb") as f:
        s3.upload_fileobj(f, BUCKET, key, Config=cfg)
    up = time.monotonic() - started
    size = os.path.getsize(big)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    check(head["ContentLength"] == size, f"head length {head['ContentLength']} != {size}")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"]
    check(listed[0]["Size"] == size, f"listed size {listed[0]['Size']} != {size}")
    back = big + ".back"
    started = time.monotonic()
    s3.download_file(BUCKET, key, back, Config=cfg)
    down = time.monotonic() - started

    def sha(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    check(sha(back) == sha(big), "downloaded object differs")
    os.remove(back)
    return {"key": key, "size": size, "up_s": round(up, 1), "down_s": round(down, 1)}


if __name__ == "__main__":
    result = {
        "delete": delete_all,
        "expect100": empty_put_then_put_on_one_connection,
        "multipart": multipart,
    }.get(MODE, main)()
    print(json.dumps(result))
