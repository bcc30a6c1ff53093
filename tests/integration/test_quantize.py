#!/usr/bin/python3
"""test_quantize.py — outpost-quantize against the committed model.

  test_quantize.py BINDIR SOURCE_DIR

* Quantizing kernels/models/event-v1.safetensors with the documented command reproduces the
  committed (and built-in) kernels/models/event-v1.h5: every code, scale, bias and
  normalisation value identical (read back with h5py).
* MXFP4 and FP32 files load (outpost-bench accuracy reads them) and MXFP4 is smaller than FP32.
* Broken inputs are refused with messages that name the file and what is wrong: a truncated
  safetensors file, a YAML description with a syntax error (line:column), a layer the weights
  do not have.
"""
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(c, msg):
    if not c:
        fail(msg)


def main():
    bindir, src = sys.argv[1], sys.argv[2]
    q = os.path.join(bindir, "outpost-quantize")
    st = os.path.join(src, "kernels", "models", "event-v1.safetensors")
    arch = os.path.join(src, "kernels", "models", "event-v1.arch.yaml")
    committed = os.path.join(src, "kernels", "models", "event-v1.h5")
    d = tempfile.mkdtemp(prefix="op-quant-")
    out = os.path.join(d, "event-v1.h5")
    # the shipped recipe: NVFP4 W4A4, the per-event head in FP32 (docs/accuracy.md)
    p = subprocess.run([q, "--weights", st, "--arch", arch, "--format", "nvfp4", "--mode", "w4a4",
                        "--fp32-layers", "head.0,head.1,head.2", "--out", out], capture_output=True, text=True)
    check(p.returncode == 0, "quantize failed: %s" % p.stderr)
    check("pulse.0" in p.stdout and "rel.error" in p.stdout, "no per-layer error report: %s" % p.stdout)
    check(re.search(r"pulse\.1 +64x64 +w4a4", p.stdout) and re.search(r"head\.0 +128x136 +fp32", p.stdout),
          "the report does not say which layers are FP4 and which FP32: %s" % p.stdout)
    with h5py.File(out, "r") as a, h5py.File(committed, "r") as b:
        names = [""]
        b.visit(names.append)
        for n in names:
            ob = b[n] if n else b
            check(not n or n in a, "%s is missing from the new file" % n)
            oa = a[n] if n else a
            if isinstance(ob, h5py.Dataset):
                check(np.array_equal(oa[()], ob[()]), "dataset %s differs from the committed model" % n)
            # every attribute of every object (layer act_scale, tensor_scale, relu, format, mode, the
            # root's summary): all change what the network computes or how it is reported
            check(sorted(oa.attrs.keys()) == sorted(ob.attrs.keys()), "%s: attributes %s, committed %s" %
                  (n or "/", sorted(oa.attrs.keys()), sorted(ob.attrs.keys())))
            for k in ob.attrs.keys():
                va, vb = oa.attrs[k], ob.attrs[k]
                if not n and k == "provenance":  # ends with the quantize command and its --out path
                    va, vb = va.split(b"quantized by:")[0], vb.split(b"quantized by:")[0]
                check(np.array_equal(va, vb), "attribute %s of %s differs: %r, committed %r" % (k, n or "/", va, vb))
    print("reproduced the committed model bit for bit")
    # a misspelt --fp32-layers name is refused, not silently quantized to FP4
    p = subprocess.run([q, "--weights", st, "--arch", arch, "--fp32-layers", "head.0,haed.1",
                        "--out", os.path.join(d, "typo.h5")], capture_output=True, text=True)
    check(p.returncode == 2 and "'haed.1' is not a layer" in p.stderr and not os.path.exists(os.path.join(d, "typo.h5")),
          "a misspelt --fp32-layers name: exit %d, %s" % (p.returncode, p.stderr))
    sizes = {}
    for fmt, mode in (("mxfp4", "w4a16"), ("fp32", "w4a4")):
        o = os.path.join(d, "%s.h5" % fmt)
        p = subprocess.run([q, "--weights", st, "--arch", arch, "--format", fmt, "--mode", mode, "--out", o],
                           capture_output=True, text=True)
        check(p.returncode == 0, "%s: %s" % (fmt, p.stderr))
        sizes[fmt] = os.path.getsize(o)
    check(sizes["mxfp4"] < sizes["fp32"] / 2.5, "MXFP4 file is not much smaller than FP32: %s" % sizes)
    # broken inputs
    with open(st, "rb") as f:
        blob = f.read()
    trunc = os.path.join(d, "trunc.safetensors")
    with open(trunc, "wb") as f:
        f.write(blob[:5000])
    p = subprocess.run([q, "--weights", trunc, "--arch", arch, "--out", os.path.join(d, "t.h5")],
                       capture_output=True, text=True)
    check(p.returncode == 1 and trunc in p.stderr and "truncated" in p.stderr, "truncated weights: %s" % p.stderr)
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("network: outpost-event\nfeatures: outpost-features-v1\npulse_features: 16\n  oops: [\n")
    p = subprocess.run([q, "--weights", st, "--arch", bad, "--out", os.path.join(d, "b.h5")], capture_output=True, text=True)
    check(p.returncode == 1 and "%s:4:" % bad in p.stderr, "YAML error without its line: %s" % p.stderr)
    with open(arch) as f:
        text = f.read().replace("head.2]", "head.2, head.3]")
    with open(bad, "w") as f:
        f.write(text)
    p = subprocess.run([q, "--weights", st, "--arch", bad, "--out", os.path.join(d, "c.h5")], capture_output=True, text=True)
    check(p.returncode == 1 and "head.3" in p.stderr and "missing" in p.stderr, "missing layer: %s" % p.stderr)
    check(not os.path.exists(os.path.join(d, "c.h5")), "a failed run left a model file behind")
    # the head's outputs in another order would load and be read wrongly: refused, with the line
    with open(arch) as f:
        text = f.read().replace("[dir_dx, dir_dy, dir_dz, log10_energy", "[log10_energy, dir_dx, dir_dy, dir_dz")
    with open(bad, "w") as f:
        f.write(text)
    p = subprocess.run([q, "--weights", st, "--arch", bad, "--out", os.path.join(d, "o.h5")], capture_output=True, text=True)
    line = [i + 1 for i, ln in enumerate(text.splitlines()) if ln.startswith("outputs:")][0]
    check(p.returncode == 1 and ("%s:%d: outputs must be" % (bad, line)) in p.stderr
          and not os.path.exists(os.path.join(d, "o.h5")), "outputs reordered: exit %d, %s" % (p.returncode, p.stderr))
    # layers named otherwise (a PyTorch module's names): the loader finds them as pulse.N and
    # head.N, so the tool refuses rather than write a file the appliance would not load
    import json
    import struct
    hlen = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + hlen])
    renamed = {(k.replace("pulse.", "enc.", 1) if k.startswith("pulse.") else k): v for k, v in header.items()}
    hb = json.dumps(renamed).encode()
    ren = os.path.join(d, "renamed.safetensors")
    with open(ren, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + blob[8 + hlen:])
    with open(arch) as f:
        text = f.read().replace("[pulse.0, pulse.1]", "[enc.0, enc.1]")
    with open(bad, "w") as f:
        f.write(text)
    p = subprocess.run([q, "--weights", ren, "--arch", bad, "--out", os.path.join(d, "r.h5")], capture_output=True,
                       text=True)
    check(p.returncode == 1 and "layer 0 is named 'enc.0'" in p.stderr and not os.path.exists(os.path.join(d, "r.h5")),
          "layers named enc.N: exit %d, %s" % (p.returncode, p.stderr))
    # a list where the description's keys belong, and an id the appliance reserves
    with open(bad, "w") as f:
        f.write("- network\n")
    p = subprocess.run([q, "--weights", st, "--arch", bad, "--out", os.path.join(d, "l.h5")], capture_output=True, text=True)
    check(p.returncode == 1 and "a list can only be a value" in p.stderr, "a top-level list: exit %d, %s"
          % (p.returncode, p.stderr))
    for bad_id in ("3", "abc", "17x"):
        p = subprocess.run([q, "--weights", st, "--arch", arch, "--id", bad_id, "--out", os.path.join(d, "i.h5")],
                           capture_output=True, text=True)
        check(p.returncode == 2 and "--id %s" % bad_id in p.stderr and not os.path.exists(os.path.join(d, "i.h5")),
              "--id %s: exit %d, %s" % (bad_id, p.returncode, p.stderr))
    # a NaN bias passes the quantizer's weight checks; the appliance's loader refuses it, so the
    # tool does too, leaving nothing at --out
    off = header["head.1.bias"]["data_offsets"][0]
    nanb = bytearray(blob)
    nanb[8 + hlen + off:8 + hlen + off + 4] = struct.pack("<f", float("nan"))
    nanp = os.path.join(d, "nan.safetensors")
    with open(nanp, "wb") as f:
        f.write(bytes(nanb))
    p = subprocess.run([q, "--weights", nanp, "--arch", arch, "--out", os.path.join(d, "n.h5")], capture_output=True,
                       text=True)
    check(p.returncode == 1 and "refused by outpostd's loader" in p.stderr and not os.path.exists(os.path.join(d, "n.h5"))
          and not [x for x in os.listdir(d) if ".tmp-" in x], "a NaN bias: exit %d, %s" % (p.returncode, p.stderr))
    # an FP4 layer's calibrated activation range of 0: refused, naming it (before: its
    # activations were quantized at an arbitrary scale and the file written all the same)
    off = header["pulse.0.act_amax"]["data_offsets"][0]
    zb = bytearray(blob)
    zb[8 + hlen + off:8 + hlen + off + 4] = struct.pack("<f", 0.0)
    zp = os.path.join(d, "zero.safetensors")
    with open(zp, "wb") as f:
        f.write(bytes(zb))
    p = subprocess.run([q, "--weights", zp, "--arch", arch, "--out", os.path.join(d, "z.h5")], capture_output=True,
                       text=True)
    check(p.returncode == 1 and "pulse.0.act_amax = 0 must be positive" in p.stderr
          and not os.path.exists(os.path.join(d, "z.h5")), "act_amax 0: exit %d, %s" % (p.returncode, p.stderr))
    # a shape whose size in bytes wraps past 2^64 to the tensor's true size: refused by name
    # (before, it matched, and the weights were read far beyond the file)
    w0 = header["pulse.0.weight"]
    elems = (w0["data_offsets"][1] - w0["data_offsets"][0]) // 4
    check(elems & (elems - 1) == 0, "pulse.0.weight's size is not a power of two: %d" % elems)
    wrapped = dict(header)
    wrapped["pulse.0.weight"] = dict(w0, shape=[elems, 1 + (1 << 62) // elems])
    hb = json.dumps(wrapped).encode()
    wp = os.path.join(d, "wrapped.safetensors")
    with open(wp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + blob[8 + hlen:])
    p = subprocess.run([q, "--weights", wp, "--arch", arch, "--out", os.path.join(d, "w.h5")], capture_output=True,
                       text=True)
    check(p.returncode == 1 and "'pulse.0.weight'" in p.stderr and "too large" in p.stderr,
          "a wrapping shape: exit %d, %s" % (p.returncode, p.stderr))
    print("ok: quantize")


if __name__ == "__main__":
    main()
