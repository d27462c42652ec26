#!/usr/bin/env python3
"""Runs one command and prints its wall time and peak resident memory, measured with
getrusage(RUSAGE_CHILDREN) (ru_maxrss: the largest resident set of the child process, which is
the whole program for blurgate and deface alike). The command's own output goes to LOG.

usage: bench_measure.py LOG -- COMMAND [ARG...]
prints: wall_s=<seconds> peak_rss_mib=<MiB>; exits with the command's status.
"""
import resource
import subprocess
import sys
import time


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(__doc__)
    log, cmd = argv[0], argv[2:]
    with open(log, "ab") as out:
        started = time.perf_counter()
        status = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"wall_s={wall:.3f} peak_rss_mib={peak_kib / 1024:.1f}")
    sys.exit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
