#!/usr/bin/python3
"""Rewrite kernels/cuda/ops.cu for the CPU emulation (cuda_emu.h): every launch
`kernel<<<grid, block, smem, stream>>>(args);` becomes
`emu_launch(dim3(grid), dim3(block), [=]() { kernel(args); });` — captured by value, since a
launch made while a stream is being captured into a graph runs later, at the graph's launch.
Usage: emulate.py OPS_CU OUT_CPP"""
import re
import sys


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def main():
    src = open(sys.argv[1]).read()
    launch = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\((.*?)\);", re.S)
    count = 0

    def repl(m):
        nonlocal count
        count += 1
        cfg = split_top(m.group(2))
        return "emu_launch(dim3(%s), dim3(%s), [=]() { %s(%s); });" % (cfg[0], cfg[1], m.group(1), m.group(3))

    out = launch.sub(repl, src)
    if count == 0 or "<<<" in out:
        sys.exit("emulate.py: launches not all rewritten (%d found)" % count)
    with open(sys.argv[2], "w") as f:
        f.write('#include "tests/gpu/emu/cuda_emu.h"\n#line 1 "%s"\n' % sys.argv[1])
        f.write(out)


main()
