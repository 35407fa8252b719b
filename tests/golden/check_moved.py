"""After a re-recording that changes only the encoder's table precisions or lane counts (issue
24), checks that exactly the cases whose table precision or lanes changed moved:

    git show OLD:tests/golden/outputs.json > /tmp/old.json
    python tests/golden/make_golden.py
    python tests/golden/check_moved.py /tmp/old.json tests/golden/outputs.json [CASE ...]

For every case in both records:
- `input:` and `corpus:` entries (inputs, and the decoding of fixed blobs) are unchanged;
- an encoder case (`compress:` / `encode:`) moved if and only if the precisions or lanes of its
  streams (`decode:`'s inspect, in stream order) changed, or its stream modes did;
- its decoded array is unchanged (the codes are coded losslessly either way);
- in its inspect, only the sizes and the fields of the streams whose precision or lanes changed
  differ.
Prints a table of what moved and exits 1 on any violation. CASE names a case whose old record
holds no inspect (the torch cases before issue 24): its streams were compared by hand, with both
builds, and it is accepted as moved.
"""

from __future__ import annotations

import json
import sys

SIZE_KEYS = {"compressed_bytes", "bytes", "len", "total_len", "encoded_bytes", "compressed_len", "body_bytes"}


def streams(entry):
    ins = entry.get("inspect") if isinstance(entry, dict) else None
    if not isinstance(ins, dict):
        return None
    return [(s.get("mode"), s.get("precision_bits"), s.get("lanes")) for s in ins.get("streams", [])]


def strip(d, drop_stream):
    """inspect() without size fields, and without the streams `drop_stream` says changed."""
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            if k in SIZE_KEYS or "bytes" in k or k.endswith("_len"):
                continue
            if k == "streams":
                v = [strip(s, None) for i, s in enumerate(v) if not (drop_stream and drop_stream(i))]
            out[k] = strip(v, None)
        return out
    if isinstance(d, list):
        return [strip(x, None) for x in d]
    return d


def main(old_path, new_path, *by_hand):
    old = json.loads(open(old_path).read())["cases"]
    new = json.loads(open(new_path).read())["cases"]
    bad, moved, kept = [], [], 0
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            bad.append(f"{name}: in one record only")
            continue
        kind, _, case = name.partition(":")
        if kind in ("input", "corpus"):
            if old[name] != new[name]:
                bad.append(f"{name}: changed")
            continue
        if kind not in ("compress", "encode"):
            continue
        dec = f"decode:{case}"
        o_dec, n_dec = old.get(dec), new.get(dec)
        changed = old[name] != new[name]
        o_st, n_st = streams(o_dec), streams(n_dec)
        prec_changed = o_st != n_st
        if changed and o_st is None and case in by_hand:
            moved.append((case, old[name].get("len"), new[name].get("len"), "(by hand)", n_st))
            continue
        if changed != prec_changed:
            bad.append(f"{name}: blob {'moved' if changed else 'kept'}, precisions {o_st} -> {n_st}")
            continue
        if isinstance(o_dec, dict) and o_dec.get("decompress", o_dec) != (n_dec or {}).get("decompress", n_dec):
            bad.append(f"{name}: decoded array differs")
        if changed:
            diff = {i for i, (a, b) in enumerate(zip(o_st, n_st)) if a != b} if o_st and n_st and len(o_st) == len(n_st) else None
            if diff is not None and strip(o_dec["inspect"], lambda i: i in diff) != strip(n_dec["inspect"], lambda i: i in diff):
                bad.append(f"{name}: inspect differs beyond sizes and the changed streams")
            moved.append((case, old[name].get("len"), new[name].get("len"), o_st, n_st))
        else:
            kept += 1
            if o_dec != n_dec:
                bad.append(f"{dec}: changed although its blob did not")
    print(f"| case | old bytes | new bytes | change | streams (mode, p, lanes) before -> after |")
    print("|---|---:|---:|---:|---|")
    for case, a, b, s0, s1 in moved:
        pct = f"{100 * (b / a - 1):+.3f}%" if a and b else ""
        print(f"| {case} | {a:,} | {b:,} | {pct} | {s0} -> {s1} |")
    print(f"\n{len(moved)} encoder cases moved, {kept} kept; {len(bad)} violations")
    for b in bad:
        print("VIOLATION:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
