#!/usr/bin/env python3
"""Every file under a folder accounted for in a redact report: a table by status and reason.

    python3 scripts/account.py REPORT.json INPUT_DIR

Rows: status, and for failed files the error kind (or, for reports of versions before
`error_kind`, the start of the message), for skipped ones the reason. Files under INPUT_DIR
that the report does not list at all are counted as "unaccounted" and named.
"""
import json
import os
import sys
from collections import Counter


def main() -> int:
    report_path, root = sys.argv[1], sys.argv[2]
    report = json.load(open(report_path))
    listed = {os.path.realpath(f["input"]) if os.path.exists(f["input"]) else f["input"] for f in report["files"]}
    listed |= {f["input"] for f in report["files"]}
    rows = Counter()
    for f in report["files"]:
        status = f["status"]
        if status == "failed":
            why = f.get("error_kind") or (f.get("error") or "")[:48]
        elif status == "skipped":
            why = f.get("reason", "")
        else:
            why = ""
        rows[(status, why)] += 1
    unaccounted = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if p not in listed and os.path.realpath(p) not in listed:
                unaccounted.append(os.path.relpath(p, root))
    print(f"| status | reason / error kind | files |\n|---|---|---|")
    for (status, why), n in sorted(rows.items()):
        print(f"| {status} | {why} | {n} |")
    print(f"| unaccounted | (not in the report) | {len(unaccounted)} |")
    for u in sorted(unaccounted):
        print(f"  unaccounted: {u}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
