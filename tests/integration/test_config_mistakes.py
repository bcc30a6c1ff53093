#!/usr/bin/python3
"""test_config_mistakes.py — the corpus of operator mistakes in tests/config/mistakes/.

  test_config_mistakes.py OUTPOSTCTL CORPUS_DIR

Each file is a realistic configuration with one mistake, headed by what `outpostctl
check-config` must say about it:

    # what the operator did
    # expect: LINE:COL: text of the error
    # expect: LINE:COL: warning: text of a warning

For every file: the exit status is 78, every expected diagnostic is reported at exactly that
LINE:COL with that kind and text, the offending line is echoed with a caret under COL, and
nothing else is reported (no extra error, no surprise warning). So a mistake can neither pass
silently nor be reported somewhere the operator would not look.
"""
import os
import re
import subprocess
import sys

DIAG = re.compile(r"^(.*?):(\d+):(\d+): (error|warning): (.*)$")


def main():
    ctl, corpus = sys.argv[1], sys.argv[2]
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".yaml"))
    failures = []
    for name in files:
        path = os.path.join(corpus, name)
        with open(path) as f:
            lines = f.read().split("\n")
        expect = []
        for ln in lines:
            m = re.match(r"^# expect: (\d+):(\d+): (warning: )?(.*)$", ln)
            if m:
                expect.append((int(m.group(1)), int(m.group(2)), "warning" if m.group(3) else "error", m.group(4)))
        if not expect:
            failures.append("%s: no '# expect:' line" % name)
            continue
        p = subprocess.run([ctl, "check-config", path], capture_output=True, text=True, timeout=20)
        out = p.stderr.split("\n")
        diags = []
        for i, ln in enumerate(out):
            m = DIAG.match(ln)
            if m and m.group(1) == path:
                diags.append((int(m.group(2)), int(m.group(3)), m.group(4), m.group(5), out[i + 1:i + 3]))
        problems = []
        if p.returncode != 78:
            problems.append("exit status %d, expected 78" % p.returncode)
        for line, col, kind, text in expect:
            hit = [d for d in diags if d[0] == line and d[1] == col and d[2] == kind and text in d[3]]
            if not hit:
                problems.append("expected %d:%d: %s: %s" % (line, col, kind, text))
                continue
            echo = hit[0][4]
            # the offending line echoed (indented by 2) and a caret under its column
            if len(echo) < 2 or echo[0][2:] != lines[line - 1].replace("\t", " ") and echo[0][2:] != lines[line - 1] \
                    or echo[1].rstrip() != " " * (col + 1) + "^":
                if line <= len(lines) and lines[line - 1].strip():
                    problems.append("line %d not echoed with a caret under column %d: %s" % (line, col, echo))
        extra = [d for d in diags if not any(d[0] == e[0] and d[1] == e[1] and d[2] == e[2] and e[3] in d[3]
                                             for e in expect)]
        for d in extra:
            problems.append("unexpected %d:%d: %s: %s" % d[:4])
        if problems:
            failures.append("%s:\n    %s\n  outpostctl said:\n    %s" % (name, "\n    ".join(problems),
                                                                        "\n    ".join(out)))
    for f in failures:
        print("FAIL: " + f)
    print("%d mistakes, %d reported exactly as expected" % (len(files), len(files) - len(failures)))
    if len(files) < 50:
        print("FAIL: the corpus must hold at least 50 mistakes")
        sys.exit(1)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
