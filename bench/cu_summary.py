#!/usr/bin/env python3
"""cu_summary.py — one iscsi-test-cu -v log → one line per test.

    cu_summary.py [--server NAME] [--status EXIT] LOG

Prints "NAME<TAB>Suite.Test<TAB>STATUS" for every test the log shows, where
STATUS is PASS (passed, nothing skipped), SKIP (CUnit counts it passed but it
printed [SKIPPED]: the target lacks what it tests, or -d/-S was not given),
FAIL (CUnit says FAILED), CRASH (the process died in it: no result and no run
summary) or HANG (the same, and EXIT is 124/137: `timeout` stopped it).
The run summary's failure list is authoritative for FAIL. Standard library only.
"""
import re
import sys


def classify(text, status):
    tests = []  # [suite.test, block text]
    suite = None
    for line in text.splitlines(keepends=True):
        m = re.match(r"Suite: (\S+)", line)
        if m:
            suite = m.group(1)
            continue
        m = re.match(r"  Test: (\S+) \.\.\.(.*)", line, re.S)
        if m and suite:
            tests.append(["%s.%s" % (suite, m.group(1)), m.group(2)])
            continue
        if line.startswith("Run Summary:"):
            suite = None
            tests.append([None, ""])
            continue
        if tests and tests[-1][0]:
            tests[-1][1] += line
    failed = set("%s.%s" % m for m in re.findall(r"^Suite (\S+), Test (\S+) had failures", text, re.M))
    summary = "Run Summary:" in text
    out = []
    for i, (name, block) in enumerate(tests):
        if name is None:
            continue
        # what follows the test's verdict (the suite's teardown) is not the test's
        m = re.search(r"(passed|FAILED)[ \t]*(\n|\[|$)", block)
        done = m is not None
        own = block[:m.start()] if m else block
        if name in failed or (m and m.group(1) == "FAILED"):
            st = "FAIL"
        elif not done and not summary and i == len(tests) - 1:
            st = "HANG" if status in (124, 137) else "CRASH"
        elif "[SKIPPED]" in own:
            st = "SKIP"
        else:
            st = "PASS"
        out.append((name, st))
    return out


def main(argv):
    server, status, path = "", 0, None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--server":
            server = args.pop(0)
        elif a == "--status":
            status = int(args.pop(0))
        else:
            path = a
    if not path:
        print(__doc__, file=sys.stderr)
        return 2
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    res = classify(text, status)
    if not res:
        print("%s: no test in the log (exit status %d)" % (path, status), file=sys.stderr)
        return 1
    for name, st in res:
        print("%s\t%s\t%s" % (server, name, st))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
