#!/usr/bin/env python3
"""Hot-path peers that are not Rust crates, timed on the same bytes sizes as the envelope bench.

* `openssl speed -evp aes-256-gcm` (encrypt, and `-decrypt`), one buffer size at a time,
  wall-clock (`-elapsed`): the hardware reference as OpenSSL drives it.
* the `age` command-line tool encrypting to an X25519 recipient (and decrypting with the
  identity), input and output files on tmpfs; each operation is one process, so the time
  includes process start-up (which dominates small objects).
* the AWS Encryption SDK for Python with a raw AES keyring (AES-256 wrapping key), committing
  algorithm suite without signatures (AES_256_GCM_HKDF_SHA512_COMMIT_KEY, the closest to what
  Custodia does) at 64 KiB frames; for small messages also the SDK's default suite (which adds
  an ECDSA P-384 signature per message).

Every cell is measured in several runs (`--runs`); each run is bounded in count and time and
records seconds per operation. bench/report.py shows min / median / max over the runs and
divides by raw ring measured in the same `bench/run`.

Writes JSON (default: target/peers-bench/peers.json). A peer that is missing is recorded as
missing with the reason, never skipped silently. Standard library only, except the AWS SDK.

usage: bench/peers.py [--quick] [--runs N] [--out FILE] [--sizes 4KiB,75KiB,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"4KiB": 4 << 10, "75KiB": 75 << 10, "1MiB": 1 << 20, "16MiB": 16 << 20,
         "256MiB": 256 << 20}


def data(n: int) -> bytes:
    # Incompressible-ish, deterministic (no codec here compresses, but be safe).
    block = os.urandom(1 << 20)
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


def bounded(fn, max_s: float, max_n: int) -> float:
    """Seconds per call of fn over one run: at least one call, stops at max_s or max_n."""
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= max_s or n >= max_n:
            return el / n


def version(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0] if out else None


def openssl_peer(sizes, runs, seconds, results, peers):
    exe = shutil.which("openssl")
    if not exe:
        peers["openssl"] = {"missing": "no `openssl` on PATH"}
        return
    peers["openssl"] = {"version": version([exe, "version"])}
    for name in sizes:
        n = SIZES[name]
        for op, extra in (("encrypt", []), ("decrypt", ["-decrypt"])):
            per = []
            for _ in range(runs):
                r = subprocess.run(
                    [exe, "speed", "-mr", "-elapsed", "-seconds", str(seconds), "-bytes", str(n),
                     *extra, "-evp", "aes-256-gcm"],
                    capture_output=True, text=True, timeout=60 + 4 * seconds, check=False)
                bps = None
                for line in r.stdout.splitlines():
                    if line.startswith("+F:"):
                        bps = float(line.rsplit(":", 1)[1])  # bytes per second
                if not bps:
                    raise SystemExit(f"peers.py: cannot parse `openssl speed` output:\n{r.stdout}"
                                     f"\n{r.stderr}")
                per.append(n / bps)
            results.append({"peer": "openssl", "op": op, "size": name, "bytes": n,
                            "s_per_op": per})
            print(f"peers.py: openssl {op} {name}: {min(per) * 1e6:.1f} µs (best of {runs})",
                  file=sys.stderr)


def age_peer(sizes, runs, max_s, results, peers, tmp: Path):
    exe, keygen = shutil.which("age"), shutil.which("age-keygen")
    if not exe or not keygen:
        peers["age-cli"] = {"missing": "no `age` / `age-keygen` on PATH (Debian package `age`)"}
        return
    peers["age-cli"] = {"version": version([exe, "--version"])}
    key = tmp / "age.key"
    subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True, timeout=10)
    recipient = subprocess.run([keygen, "-y", str(key)], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    # Process start-up alone, for reading the small sizes.
    startup = [bounded(lambda: subprocess.run([exe, "--version"], capture_output=True,
                                              check=True), max_s, 200) for _ in range(runs)]
    results.append({"peer": "age-cli", "op": "startup", "size": None, "bytes": 0,
                    "s_per_op": startup})
    for name in sizes:
        n = SIZES[name]
        src, enc, dec = tmp / f"in-{name}", tmp / f"in-{name}.age", tmp / f"out-{name}"
        src.write_bytes(data(n))
        enc_cmd = [exe, "-r", recipient, "-o", str(enc), str(src)]
        dec_cmd = [exe, "-d", "-i", str(key), "-o", str(dec), str(enc)]
        for op, cmd in (("encrypt", enc_cmd), ("decrypt", dec_cmd)):
            per = [bounded(lambda cmd=cmd: subprocess.run(cmd, check=True, timeout=120),
                           max_s, 200) for _ in range(runs)]
            results.append({"peer": "age-cli", "op": op, "size": name, "bytes": n,
                            "s_per_op": per})
            print(f"peers.py: age CLI {op} {name}: {min(per) * 1e6:.1f} µs (best of {runs})",
                  file=sys.stderr)
        if dec.read_bytes() != src.read_bytes():
            raise SystemExit(f"peers.py: age round trip of {name} differs")
        for f in (src, enc, dec):
            f.unlink()


def aws_peer(sizes, runs, max_s, results, peers):
    try:
        import aws_encryption_sdk
        from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
        from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
        from aws_cryptographic_material_providers.mpl.models import (
            AesWrappingAlg, CreateRawAesKeyringInput)
        from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
    except ImportError as e:
        peers["aws-encryption-sdk"] = {"missing": f"python import failed: {e}"}
        return
    from importlib.metadata import version as pkg_version
    peers["aws-encryption-sdk"] = {
        "version": f"aws-encryption-sdk {pkg_version('aws-encryption-sdk')}, "
                   f"aws-cryptographic-material-providers "
                   f"{pkg_version('aws-cryptographic-material-providers')}, "
                   f"cryptography {pkg_version('cryptography')}, Python {sys.version.split()[0]}"}
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    keyring = mpl.create_raw_aes_keyring(input=CreateRawAesKeyringInput(
        key_namespace="custodia-bench", key_name="aes-256", wrapping_key=os.urandom(32),
        wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16))
    suites = [("nosig", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, list(sizes)),
              ("default", Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
               [s for s in sizes if s in ("4KiB", "75KiB")])]
    for suite, alg, ssizes in suites:
        for name in ssizes:
            n = SIZES[name]
            pt = data(n)
            ct, _ = client.encrypt(source=pt, keyring=keyring, algorithm=alg,
                                   frame_length=65536)
            back, _ = client.decrypt(source=ct, keyring=keyring)
            if back != pt:
                raise SystemExit("peers.py: AWS Encryption SDK round trip differs")
            enc = lambda pt=pt, alg=alg: client.encrypt(source=pt, keyring=keyring,  # noqa: E731
                                                         algorithm=alg, frame_length=65536)
            dec = lambda ct=ct: client.decrypt(source=ct, keyring=keyring)  # noqa: E731
            for op, fn in (("encrypt", enc), ("decrypt", dec)):
                per = [bounded(fn, max_s, 1000) for _ in range(runs)]
                results.append({"peer": f"aws-{suite}", "op": op, "size": name, "bytes": n,
                                "s_per_op": per})
                print(f"peers.py: AWS SDK ({suite}) {op} {name}: {min(per) * 1e6:.1f} µs "
                      f"(best of {runs})", file=sys.stderr)
            del pt, ct, back


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="no 256 MiB, shorter runs")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--sizes", default=None)
    ap.add_argument("--out", type=Path,
                    default=Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
                    / "peers-bench" / "peers.json")
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 3)
    if args.sizes:
        sizes = args.sizes.split(",")
    else:
        sizes = [s for s in SIZES if not (args.quick and s == "256MiB")]
    max_s = 0.15 if args.quick else 0.6
    started = time.time()
    results: list[dict] = []
    peers: dict[str, dict] = {}
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as t:
        openssl_peer(sizes, runs, 1, results, peers)
        age_peer(sizes, runs, max_s, results, peers, Path(t))
        aws_peer(sizes, runs, max_s, results, peers)
    try:
        aff = sorted(os.sched_getaffinity(0))
    except AttributeError:
        aff = None
    doc = {"bench": "peers", "started_unix": started, "quick": args.quick, "runs": runs,
           "max_seconds_per_run": max_s, "affinity": aff, "tmpfs": shm.is_dir(),
           "peers": peers, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"peers.py: wrote {args.out} ({time.time() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
