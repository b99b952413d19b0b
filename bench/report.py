#!/usr/bin/env python3
"""Writes bench/RESULTS.md from criterion's JSON estimates (standard library only).

Finds every benchmark through target/criterion/**/new/benchmark.json (ids, throughput),
reads the estimates.json / sample.json of each pass (criterion baselines, e.g. pass1 pass2
as saved by bench/run; default: new), takes the MEDIAN point estimate of the pass with the
lower median, and compares each Custodia path with raw ring AES-256-GCM measured in the same
run. Targets from the design are checked and marked met / NOT met.

usage: bench/report.py [--criterion-dir DIR] [--out FILE] [--since EPOCH]
                       [--mode full|quick] [--pinned CPU] [--baselines NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = ["4KiB", "75KiB", "1MiB", "16MiB"]
LARGE = {"1MiB", "16MiB"}

# (group, function) -> label; function None means the id has no function part.
RAW_SEAL = ("raw_ring_aes256gcm", "seal")
RAW_OPEN = ("raw_ring_aes256gcm", "open")


def target_for(path: str, size: str):
    """(description, threshold ratio) of the design target for a path at a size, or None."""
    if path in ("chunk_codec_seal", "chunk_codec_open") and size in LARGE:
        return ("≥ 90 % of raw ring", 0.90)
    if path == "object_seal" and size == "1MiB":
        return ("≥ 60 % of raw ring", 0.60)
    if path == "object_seal" and size == "16MiB":
        return ("≥ 90 % of raw ring", 0.90)
    return None


MESSAGE_TARGET_US = 80.0


def load(criterion_dir: Path, since: float | None, baselines: list[str]):
    """{(group, function, value): {median_ns, lo_ns, hi_ns, best_ns, spread, passes, bytes, elements}}

    With several baselines (passes of the same run, e.g. pass1 pass2), each benchmark takes
    the pass with the LOWEST median (a co-tenant only ever adds time), its CI, the fastest
    sample over all passes, and the spread of the pass medians.
    """
    out = {}
    for bj in criterion_dir.glob("**/new/benchmark.json"):
        meta = json.loads(bj.read_text())
        bench_dir = bj.parent.parent
        passes = []
        for name in baselines:
            est = bench_dir / name / "estimates.json"
            if not est.exists():
                continue
            if since is not None and est.stat().st_mtime < since:
                continue  # left over from an earlier run: not "the same run"
            e = json.loads(est.read_text())["median"]
            best = None
            sample = est.with_name("sample.json")
            if sample.exists():
                sj = json.loads(sample.read_text())
                per_iter = [t / n for t, n in zip(sj["times"], sj["iters"]) if n]
                best = min(per_iter) if per_iter else None
            passes.append((e, best))
        if not passes:
            continue
        e, _ = min(passes, key=lambda p: p[0]["point_estimate"])
        medians = [p[0]["point_estimate"] for p in passes]
        bests = [b for _, b in passes if b is not None]
        thr = meta.get("throughput") or {}
        key = (meta["group_id"], meta.get("function_id"), meta.get("value_str"))
        out[key] = {
            "median_ns": e["point_estimate"],
            "lo_ns": e["confidence_interval"]["lower_bound"],
            "hi_ns": e["confidence_interval"]["upper_bound"],
            "best_ns": min(bests) if bests else None,
            "spread": max(medians) / min(medians) - 1,
            "passes": len(passes),
            "bytes": thr.get("Bytes") or thr.get("BytesDecimal"),
            "elements": thr.get("Elements"),
        }
    return out


def get(data, group, function, value):
    return data.get((group, function, value))


def fmt_time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def tcell(e) -> str:
    """Median [95 % CI], plus the spread between pass medians when there were several passes."""
    t = f"{fmt_time(e['median_ns'])} [{fmt_time(e['lo_ns'])} – {fmt_time(e['hi_ns'])}]"
    if e.get("passes", 1) > 1:
        t += f" (passes differ {e['spread'] * 100:.0f} %)"
    return t


def gbps(entry) -> float | None:
    if not entry or not entry["bytes"]:
        return None
    return entry["bytes"] / entry["median_ns"]  # bytes per ns == GB/s (10^9 B/s)


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def machine(pinned: str | None, when: float | None) -> str:
    model, flags, info = "?", set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "model name" and model == "?":
                model = v.strip()
            elif k == "flags" and not flags:
                flags = set(v.split())
            elif k in ("cpu family", "model") and k not in info:
                info[k] = v.strip()
    except OSError:
        pass
    if info:
        model += f" (family {info.get('cpu family', '?')} model {info.get('model', '?')})"
    if "hypervisor" in flags:
        model += ", virtualised"
    wanted = ["aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx2", "avx512f", "avx512vl", "sha_ni"]
    present = [f for f in wanted if f in flags]
    absent = [f for f in wanted if f not in flags]
    cores = os.cpu_count()
    stamp = (dt.datetime.fromtimestamp(when, dt.timezone.utc) if when is not None
             else dt.datetime.now(dt.timezone.utc))
    pin = f"; bench pinned to CPU {pinned}" if pinned else "; not pinned"
    return (
        f"{model}; flags present: {' '.join(present) or 'none'}"
        f"{'; absent: ' + ' '.join(absent) if absent else ''}; {cores} logical cores{pin}; "
        f"kernel {platform.release()}; {sh('rustc', '-V')}; "
        f"run started {stamp.strftime('%Y-%m-%d %H:%M UTC')}"
    )


def code_version() -> str:
    head = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD") or "?"
    dirty = sh("git", "-C", str(ROOT), "status", "--porcelain", "--", "crates/envelope")
    ring = "?"
    lock = ROOT / "Cargo.lock"
    if lock.exists():
        text = lock.read_text()
        i = text.find('name = "ring"')
        if i >= 0:
            ring = text[i:].split("\n")[1].split('"')[1]
    return (f"workspace HEAD {head}, crates/envelope "
            f"{'with uncommitted changes' if dirty else 'as committed'}; ring {ring}; "
            "bench profile (= release: opt-level 3, codegen-units 4, debug 1)")


def status(ratio: float | None, threshold: float) -> str:
    if ratio is None:
        return "not measured"
    return "**met**" if ratio >= threshold else "**NOT met**"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion-dir", type=Path,
                    default=Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    ap.add_argument("--since", type=float, default=None,
                    help="ignore estimates older than this UNIX time (the run's start)")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--pinned", default=None)
    ap.add_argument("--baselines", nargs="+", default=["new"],
                    help="criterion baseline dirs to read, one per pass (default: new)")
    args = ap.parse_args()

    data = load(args.criterion_dir, args.since, args.baselines)
    if not data:
        print(f"report.py: no criterion estimates under {args.criterion_dir}", file=sys.stderr)
        return 1

    lines: list[str] = []
    w = lines.append
    summary: list[tuple[str, str, str, str]] = []

    w("# Custodia envelope benchmarks")
    w("")
    w(f"Machine: {machine(args.pinned, args.since)}")
    w("")
    w(f"Code: {code_version()}")
    w("")
    npass = len(args.baselines)
    if args.mode == "quick":
        how = "quick: one short pass (warm-up 0.5 s, measurement 1 s); numbers are indicative only"
    elif npass > 1:
        how = (f"{npass} passes, warm-up 1 s and measurement 2 s per benchmark and pass; each "
               "benchmark reports the pass with the lower median (a co-tenant only adds time) and "
               "the spread between pass medians")
    else:
        how = "one pass, warm-up 1 s, measurement 3 s"
    w(f"Run: `bench/run{' --quick' if args.mode == 'quick' else ''}` ({how}; 20 flat samples ≥ 1 MiB, "
      "50 below). "
      "Single thread. Figures are criterion **median** point estimates, time with its 95 % CI. "
      "GB/s = 10⁹ plaintext bytes per second (criterion itself prints GiB/s). "
      "Every ratio divides by raw ring measured in the same run: seal paths by "
      "`raw_ring_aes256gcm/seal`, open paths by `raw_ring_aes256gcm/open`. Status is judged on the "
      "median ratio; the *best samples* ratio (fastest sample of each side) is shown because a "
      "co-tenant on this shared machine only ever adds time, so it is the less noisy comparison.")
    w("")
    w(f"Generated by `bench/report.py` from criterion's JSON estimates "
      f"(`target/criterion/**/{{{','.join(args.baselines)}}}/estimates.json`, medians; `sample.json` "
      "for the best samples). The machine is a shared 2-core VM: expect a few % of run-to-run "
      "noise on every ratio.")
    w("")

    rows = [
        ("raw ring AES-256-GCM seal (baseline)", RAW_SEAL, None, None),
        ("raw ring AES-256-GCM open (baseline)", RAW_OPEN, None, None),
        ("chunk codec seal (`ChunkSealer`)", ("chunk_codec_seal", None), RAW_SEAL, "chunk_codec_seal"),
        ("chunk codec open (`ChunkOpener`)", ("chunk_codec_open", None), RAW_OPEN, "chunk_codec_open"),
        ("object seal (`seal_in_place` + 1 HPKE wrap)", ("object_seal", None), RAW_SEAL, "object_seal"),
        ("object open (parse + unwrap + unlock + `open_in_place`)", ("object_open", None), RAW_OPEN, "object_open"),
    ]
    for size in SIZES:
        w(f"## {size}")
        w("")
        w("| path | median time [95 % CI] | GB/s | ratio to raw ring | ratio, best samples | target | status |")
        w("| --- | --- | ---: | ---: | ---: | --- | --- |")
        for label, (group, fn), base, path in rows:
            e = get(data, group, fn, size) if fn else get(data, group, None, size) or get(data, group, size, None)
            if e is None:
                w(f"| {label} | not measured | | | | | |")
                continue
            g = gbps(e)
            t = tcell(e)
            if base is None:
                w(f"| {label} | {t} | {g:.2f} | 100 % | 100 % | baseline | |")
                continue
            b = get(data, base[0], base[1], size)
            ratio = g / gbps(b) if (b and g) else None
            best = (b["best_ns"] / e["best_ns"]) if (b and b["best_ns"] and e["best_ns"]) else None
            rtxt = f"{ratio * 100:.1f} %" if ratio is not None else "n/a"
            btxt = f"{best * 100:.1f} %" if best is not None else "n/a"
            tgt = target_for(path, size)
            if tgt:
                st = status(ratio, tgt[1])
                if best is not None and (best >= tgt[1]) != (ratio is not None and ratio >= tgt[1]):
                    st += " (best samples disagree: noise-limited)"
                summary.append((f"{label.split(' (')[0]} @ {size}", tgt[0], f"{rtxt} (best {btxt})", st))
                w(f"| {label} | {t} | {g:.2f} | {rtxt} | {btxt} | {tgt[0]} | {st} |")
            else:
                w(f"| {label} | {t} | {g:.2f} | {rtxt} | {btxt} | — | |")
        w("")

    w("## Per-object costs (size-independent)")
    w("")
    w("| operation | median time [95 % CI] | best sample | target | status |")
    w("| --- | --- | ---: | --- | --- |")
    for fn, label in [
        ("hpke_wrap_share", "`wrap_share` (one HPKE SealBase: X25519 keygen + DH)"),
        ("hpke_unwrap_share", "`unwrap_share` (one HPKE OpenBase)"),
        ("new_header_1_recipient", "`new_header`, 1 recipient"),
        ("new_header_2_recipients", "`new_header`, 2 recipients"),
    ]:
        e = get(data, "per_object", fn, None)
        if e is None:
            w(f"| {label} | not measured | | | |")
            continue
        w(f"| {label} | {tcell(e)} "
          f"| {fmt_time(e['best_ns']) if e['best_ns'] else ''} | — | |")
    e = get(data, "message_seal", "75KiB", None)
    if e is None:
        w("| `seal()` of a 75 KiB message (latency) | not measured | | ≤ 80 µs | not measured |")
        summary.append(("75 KiB message seal latency", "≤ 80 µs", "not measured", "not measured"))
    else:
        us = e["median_ns"] / 1e3
        st = "**met**" if us <= MESSAGE_TARGET_US else "**NOT met**"
        if e["best_ns"] and (e["best_ns"] / 1e3 <= MESSAGE_TARGET_US) != (us <= MESSAGE_TARGET_US):
            st += " (best sample disagrees: noise-limited)"
        w(f"| `seal()` of a 75 KiB message (latency; {gbps(e):.2f} GB/s) | "
          f"{tcell(e)} "
          f"| {fmt_time(e['best_ns']) if e['best_ns'] else ''} | ≤ 80 µs | {st} |")
        summary.append(("75 KiB message seal latency", "≤ 80 µs", f"{us:.1f} µs", st))
    w("")

    diag = {k: v for k, v in data.items() if k[0] == "diag"}
    if diag:
        w("## Diagnostics (`CUSTODIA_BENCH_DIAG=1`)")
        w("")
        w("| benchmark | median time [95 % CI] | best sample | GB/s (median) |")
        w("| --- | --- | ---: | ---: |")
        for (grp, fn, val), e in sorted(diag.items(), key=lambda kv: (kv[0][1] or "", kv[0][2] or "")):
            name = "/".join(x for x in (fn, val) if x)
            g = gbps(e)
            w(f"| `{name}` | {tcell(e)} "
              f"| {fmt_time(e['best_ns']) if e['best_ns'] else ''} | {f'{g:.2f}' if g else ''} |")
        w("")

    w("## Targets")
    w("")
    w("| target | design | measured | status |")
    w("| --- | --- | ---: | --- |")
    for name, design, measured, st in summary:
        w(f"| {name} | {design} | {measured} | {st} |")
    w("")

    if (args.out.parent / "ANALYSIS.md").exists():
        w("Where the time goes and what to change: see `bench/ANALYSIS.md` (hand-written, "
          "from a profiled run; not regenerated).")
        w("")

    args.out.write_text("\n".join(lines))
    print(f"report.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
