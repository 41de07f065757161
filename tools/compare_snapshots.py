"""Compare two snapshots of tools/snapshot.py: files only in one, and files that differ (with a short
unified diff). --ignore-lines REGEX drops matching lines on both sides first (times, tokens, the scratch
folder); --drop-definitions compares JSON answers without their `definitions` field. Issue 24 ran:

    compare_snapshots.py before after --drop-definitions --ignore-lines 'snapwork-[0-9]+' \
        --ignore-lines '^(etag|last-modified|x-convoscope-definitions): ' \
        --ignore-lines 'name="csrf" value=' --ignore-lines '<time datetime="2026-12'
"""
import argparse, difflib, re
from pathlib import Path
a = argparse.ArgumentParser(); a.add_argument("before"); a.add_argument("after")
a.add_argument("--ignore-lines", action="append", default=[]); a.add_argument("--show", type=int, default=12)
a.add_argument("--drop-definitions", action="store_true")
o = a.parse_args()
B, A = Path(o.before), Path(o.after)
fb = {p.relative_to(B) for p in B.rglob("*") if p.is_file()}
fa = {p.relative_to(A) for p in A.rglob("*") if p.is_file()}
pats = [re.compile(x) for x in o.ignore_lines]
import json
def norm_json(text):
    """An answer whose body is JSON with a `definitions` field (issue 24 point 5): compare it without."""
    head, sep, body = text.partition("\n\n")
    try:
        data = json.loads(body)
    except ValueError:
        return text
    if o.drop_definitions and isinstance(data, dict):
        data.pop("definitions", None)
    return head + sep + json.dumps(data, sort_keys=True)
def lines(p):
    return [l for l in norm_json(p.read_text(errors="replace")).splitlines() if not any(x.search(l) for x in pats)]
print(f"files: before {len(fb)}, after {len(fa)}, both {len(fb & fa)}")
for p in sorted(fb - fa): print("only before:", p)
for p in sorted(fa - fb): print("only after:", p)
same = diff = 0
for p in sorted(fb & fa):
    if (B / p).read_bytes() == (A / p).read_bytes(): same += 1; continue
    lb, la = lines(B / p), lines(A / p)
    if lb == la: same += 1; continue
    diff += 1
    d = list(difflib.unified_diff(lb, la, "before", "after", n=0, lineterm=""))
    print(f"=== {p} ({len(d)} diff lines)")
    for l in d[2:2 + o.show]: print("   ", l[:300])
print(f"identical {same}, different {diff}")
