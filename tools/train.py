#!/usr/bin/python3
"""train.py — train outpost's event network in FP32 with numpy alone; write safetensors.

The network (docs/model-format.md): a per-pulse MLP over the pulse features of
kernels/features.h, masked mean+max pooling over each event's pulses, and a head MLP that
takes the pooled vector and the event features and returns
  [dx, dy, dz]  a correction to LineFit's direction: dir = normalise(u_linefit + d)
  log10 E      (normalised: log10E = out * e_scale + e_mean)
  track logit  (track/cascade score = sigmoid)

Input: datasets written by outpost-dataset (the appliance's own feature code). The shipped
model took two runs (docs/accuracy.md, "How the shipped model was made"):
  build/bin/outpost-dataset --out train.bin --count 80000 --seed 1001 --kind mix
  /usr/bin/python3 tools/train.py --train train.bin --out stage1 --epochs 24 --seed 7 --lr 1e-3
  /usr/bin/python3 tools/train.py --train train.bin --init stage1.safetensors --qat \
      --out event-v1 --epochs 8 --lr 3e-4 --seed 7

Output: OUT.safetensors (FP32 weights, normalisation, per-layer activation ranges) and
OUT.arch.yaml (the architecture description outpost-quantize reads).
Deterministic for a given seed and data (numpy's default BLAS summation order aside).
"""
import argparse
import hashlib
import json
import struct
import sys
import time

import numpy as np


def load_dataset(path):
    arrays = {}
    with open(path, "rb") as f:
        if f.read(8) != b"OPDATA01":
            sys.exit(f"{path}: not an outpost-dataset file")
        (n,) = struct.unpack("<I", f.read(4))
        for _ in range(n):
            name = f.read(24).split(b"\0", 1)[0].decode()
            dtype, rows, cols = struct.unpack("<III", f.read(12))
            dt = np.float32 if dtype == 0 else np.uint32
            a = np.fromfile(f, dtype=dt, count=rows * cols).reshape(rows, cols)
            arrays[name] = a
    arrays["offsets"] = arrays["offsets"][:, 0].astype(np.int64)
    return arrays


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"]).copy()
    return out


# ---- fake quantization (QAT), mirroring kernels/fp4_tensor.c closely enough to train against --

def e2m1_q(y):
    """Round to the E2M1 grid (ties to even, saturating at 6), as op_e2m1_from_float."""
    a = np.minimum(np.abs(y), 6.0)
    q = np.where(a < 2, np.round(a * 2) / 2, np.where(a < 4, np.round(a), np.round(a / 2) * 2))
    return np.copysign(np.minimum(q, 6.0), y)


def e4m3_q(s):
    s = np.minimum(s, 448.0)
    e = np.floor(np.log2(np.maximum(s, 2.0 ** -6)))
    step = 2.0 ** (e - 3)
    return np.minimum(np.round(s / step) * step, 448.0)


def fake_quant(x, fmt, S=1.0):
    """Quantize-dequantize rows of x in blocks along the last axis: 'nv' (16, E4M3 scales,
    tensor encode scale S) or 'mx' (32, power-of-two scales rounded up: no clipping)."""
    R, K = x.shape
    bl = 16 if fmt == "nv" else 32
    Kp = -(-K // bl) * bl
    xp = np.zeros((R, Kp), np.float32)
    xp[:, :K] = x
    xb = xp.reshape(R, Kp // bl, bl)
    amax = np.abs(xb).max(2, keepdims=True)
    if fmt == "nv":
        s = e4m3_q(amax * S / 6)
        inv = np.where(s > 0, S / np.maximum(s, 1e-30), 0)
        out = e2m1_q(xb * inv) * s / S
    else:
        e = np.clip(np.ceil(np.log2(np.maximum(amax / 6, 2.0 ** -126))), -126, 126)
        s = 2.0 ** e
        out = e2m1_q(xb / s) * s
    return out.reshape(R, Kp)[:, :K].astype(np.float32)


def sha256_of(path):
    """The file's SHA-256, so a model's metadata ties it to the exact data and weights it came from."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, off = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Adam:
    def __init__(self, params, lr):
        self.p, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(x) for x in params]
        self.v = [np.zeros_like(x) for x in params]

    def step(self, grads, lr):
        self.t += 1
        b1, b2 = 0.9, 0.999
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mh = m / (1 - b1 ** self.t)
            vh = v / (1 - b2 ** self.t)
            p -= lr * mh / (np.sqrt(vh) + 1e-8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--head", type=int, default=128)
    ap.add_argument("--init", help="start from these weights (safetensors written by this script)")
    ap.add_argument("--qat", action="store_true",
                    help="quantization-aware: batches cycle FP32 and NVFP4/MXFP4 x W4A4/W4A16 in "
                         "fake quantization (straight-through gradients)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    d = load_dataset(args.train)
    off = d["offsets"]
    pf, ef = d["pulse_feat"], d["event_feat"]
    ne = len(off) - 1
    FP, FE = pf.shape[1], ef.shape[1]
    p_mean, p_scale = pf.mean(0), pf.std(0) + 1e-6
    e_mean, e_scale = ef.mean(0), ef.std(0) + 1e-6
    le = d["truth_log10e"][:, 0]
    en_mean, en_scale = float(le.mean()), float(le.std() + 1e-6)
    pfn = ((pf - p_mean) / p_scale).astype(np.float32)
    efn = ((ef - e_mean) / e_scale).astype(np.float32)
    u_lf = ef[:, 0:3].astype(np.float32)
    tdir, track = d["truth_dir"], d["truth_track"][:, 0]
    ten = ((le - en_mean) / en_scale).astype(np.float32)

    H, HH = args.hidden, args.head
    sizes = [("pulse.0", FP, H), ("pulse.1", H, H), ("head.0", 2 * H + FE, HH), ("head.1", HH, 64),
             ("head.2", 64, 5)]
    W, B = {}, {}
    for name, k, n in sizes:
        W[name] = (rng.standard_normal((n, k)) * np.sqrt(2.0 / k)).astype(np.float32)
        B[name] = np.zeros(n, np.float32)
    W["head.2"][0:3] = 0  # start exactly at the seed: the network learns a correction
    names = [s[0] for s in sizes]
    amax = {n: 0.0 for n in names}
    if args.init:
        init = read_safetensors(args.init)
        for n in names:
            W[n][...] = init[n + ".weight"]
            B[n][...] = init[n + ".bias"]
            amax[n] = float(init[n + ".act_amax"][0])
        p_mean, p_scale = init["norm.pulse.mean"], init["norm.pulse.scale"]
        e_mean, e_scale = init["norm.event.mean"], init["norm.event.scale"]
        en_mean, en_scale = float(init["out.log10e"][0]), float(init["out.log10e"][1])
        pfn = ((pf - p_mean) / p_scale).astype(np.float32)
        efn = ((ef - e_mean) / e_scale).astype(np.float32)
        ten = ((le - en_mean) / en_scale).astype(np.float32)
    params = [W[n] for n in names] + [B[n] for n in names]
    opt = Adam(params, args.lr)
    variants = [("nv", True), ("nv", False), ("mx", True), ("mx", False)]
    quant = {"variant": None}  # (format, activations too) or None for FP32
    calib = dict(amax)         # activation ranges for NVFP4 activation scales (from FP32 training)

    def qw(n):
        v = quant["variant"]
        if v is None:
            return W[n]
        a = float(np.abs(W[n]).max())
        return fake_quant(W[n], v[0], 2688.0 / a if a > 0 else 1.0)

    def qa(n, x):
        v = quant["variant"]
        if v is None or not v[1]:
            return x
        a = calib[n] if calib[n] > 0 else 1.0
        return fake_quant(x, v[0], 2688.0 / a)

    def forward(idx, train):
        counts = off[idx + 1] - off[idx]
        starts = off[idx]
        T = int(counts.sum())
        cs = np.concatenate([[0], np.cumsum(counts)])
        rows = np.repeat(starts - cs[:-1], counts) + np.arange(T)
        ev_of = np.repeat(np.arange(len(idx)), counts)
        QW = {n: qw(n) for n in names}
        x0 = pfn[rows]
        x0q = qa("pulse.0", x0)
        z0 = x0q @ QW["pulse.0"].T + B["pulse.0"]
        h0 = np.maximum(z0, 0)
        h0q = qa("pulse.1", h0)
        z1 = h0q @ QW["pulse.1"].T + B["pulse.1"]
        h1 = np.maximum(z1, 0)
        csum = np.add.reduceat(h1, cs[:-1], axis=0)
        mean = csum / counts[:, None]
        mx = np.maximum.reduceat(h1, cs[:-1], axis=0)
        g_in = np.concatenate([mean, mx, efn[idx]], axis=1).astype(np.float32)
        g_inq = qa("head.0", g_in)
        a0 = np.maximum(g_inq @ QW["head.0"].T + B["head.0"], 0)
        a0q = qa("head.1", a0)
        a1 = np.maximum(a0q @ QW["head.1"].T + B["head.1"], 0)
        a1q = qa("head.2", a1)
        out = a1q @ QW["head.2"].T + B["head.2"]
        if train and quant["variant"] is None:
            for n, a in (("pulse.0", x0), ("pulse.1", h0), ("head.0", g_in), ("head.1", a0), ("head.2", a1)):
                amax[n] = max(amax[n], float(np.abs(a).max()))
        cache = (rows, ev_of, counts, cs, x0q, z0, h0, h0q, z1, h1, mx, g_inq, a0, a0q, a1, a1q, QW)
        return out, cache

    def predict_dir(out, idx):
        v = u_lf[idx] + out[:, 0:3]
        nv = np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
        return v / nv, v, nv

    def evaluate(idx_all):
        errs = []
        for s in range(0, len(idx_all), 4096):
            idx = idx_all[s:s + 4096]
            out, _ = forward(idx, False)
            dirp, _, _ = predict_dir(out, idx)
            c = np.clip((dirp * tdir[idx]).sum(1), -1, 1)
            errs.append(np.degrees(np.arccos(c)))
        return np.concatenate(errs)

    has_pulses = np.nonzero(off[1:] > off[:-1])[0]
    tracks_all = has_pulses[track[has_pulses] > 0.5]
    rng.shuffle(has_pulses)
    n_hold = min(4000, len(has_pulses) // 10)
    hold = has_pulses[:n_hold]
    train_idx = has_pulses[n_hold:]
    hold_tracks = hold[track[hold] > 0.5]
    lf_err = np.degrees(np.arccos(np.clip((u_lf[hold_tracks] * tdir[hold_tracks]).sum(1), -1, 1)))
    print(f"train {len(train_idx)} events, hold-out {len(hold)} ({len(hold_tracks)} tracks); "
          f"LineFit median on hold-out tracks {np.median(lf_err):.3f} deg", flush=True)

    steps_per_epoch = len(train_idx) // args.batch
    total = steps_per_epoch * args.epochs
    step = 0
    t0 = time.time()
    for epoch in range(args.epochs):
        rng.shuffle(train_idx)
        loss_sum = 0.0
        for s in range(steps_per_epoch):
            idx = np.sort(train_idx[s * args.batch:(s + 1) * args.batch])
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / total))
            step += 1
            # QAT cycles FP32 and the four FP4 variants, so one set of weights serves all five
            quant["variant"] = ([None] + variants)[step % 5] if args.qat else None
            out, (rows, ev_of, counts, cs, x0q, z0, h0, h0q, z1, h1, mx, g_inq, a0, a0q, a1, a1q, QW) = \
                forward(idx, True)
            nb = len(idx)
            dirp, v, nv = predict_dir(out, idx)
            # Direction loss: the chord |dir - truth| (≈ the angle), smoothed below ~0.6 degrees.
            # An L1-like loss targets the median and is not dominated by the events whose
            # first guess is far off, as 1 - cos (≈ angle²/2) would be.
            wdir = np.where(track[idx] > 0.5, 1.0, 0.2).astype(np.float32)
            cosv = (dirp * tdir[idx]).sum(1)
            chord = np.sqrt(2 * np.maximum(1 - cosv, 0) + 1e-4)
            l_dir = (wdir * chord).mean()
            g_cos = -wdir / chord / nb
            g_dir = g_cos[:, None] * tdir[idx]
            g_v = (g_dir - dirp * (dirp * g_dir).sum(1, keepdims=True)) / nv
            e_err = out[:, 3] - ten[idx]
            l_e = 0.1 * (e_err ** 2).mean()
            logit = out[:, 4]
            p = 1 / (1 + np.exp(-np.clip(logit, -30, 30)))
            y = track[idx]
            l_s = 0.1 * -(y * np.log(p + 1e-7) + (1 - y) * np.log(1 - p + 1e-7)).mean()
            loss_sum += l_dir + l_e + l_s
            g_out = np.zeros_like(out)
            g_out[:, 0:3] = g_v
            g_out[:, 3] = 0.2 * e_err / nb
            g_out[:, 4] = 0.1 * (p - y) / nb
            gW, gB = {}, {}
            # straight-through: quantizers pass gradients unchanged
            gW["head.2"], gB["head.2"] = g_out.T @ a1q, g_out.sum(0)
            g_a1 = (g_out @ QW["head.2"]) * (a1 > 0)
            gW["head.1"], gB["head.1"] = g_a1.T @ a0q, g_a1.sum(0)
            g_a0 = (g_a1 @ QW["head.1"]) * (a0 > 0)
            gW["head.0"], gB["head.0"] = g_a0.T @ g_inq, g_a0.sum(0)
            g_g = g_a0 @ QW["head.0"]
            g_mean, g_max = g_g[:, :H], g_g[:, H:2 * H]
            g_h1 = (g_mean / counts[:, None])[ev_of]
            g_h1 += g_max[ev_of] * (h1 == mx[ev_of])
            g_z1 = g_h1 * (z1 > 0)
            gW["pulse.1"], gB["pulse.1"] = g_z1.T @ h0q, g_z1.sum(0)
            g_z0 = (g_z1 @ QW["pulse.1"]) * (z0 > 0)
            gW["pulse.0"], gB["pulse.0"] = g_z0.T @ x0q, g_z0.sum(0)
            opt.step([gW[n].astype(np.float32) for n in names] + [gB[n].astype(np.float32) for n in names], lr)
        quant["variant"] = None
        err = evaluate(hold_tracks)
        extra = ""
        if args.qat:
            for v in variants:
                quant["variant"] = v
                extra += f", {v[0]}fp4-{'w4a4' if v[1] else 'w4a16'} {np.median(evaluate(hold_tracks)):.3f}"
            quant["variant"] = None
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / steps_per_epoch:.4f}, hold-out track "
              f"median {np.median(err):.3f} deg{extra} ({time.time() - t0:.0f} s)", flush=True)

    tensors = {}
    for n in names:
        tensors[n + ".weight"] = W[n]
        tensors[n + ".bias"] = B[n]
        tensors[n + ".act_amax"] = np.array([max(amax[n], calib[n])], np.float32)
    tensors["norm.pulse.mean"] = p_mean.astype(np.float32)
    tensors["norm.pulse.scale"] = p_scale.astype(np.float32)
    tensors["norm.event.mean"] = e_mean.astype(np.float32)
    tensors["norm.event.scale"] = e_scale.astype(np.float32)
    tensors["out.log10e"] = np.array([en_mean, en_scale], np.float32)
    meta = {"producer": "tools/train.py", "seed": str(args.seed), "epochs": str(args.epochs),
            "init": args.init or "", "qat": "nvfp4+mxfp4 x w4a4+w4a16" if args.qat else "no",
            "train_data": args.train, "train_events": str(len(train_idx)),
            "command": " ".join(sys.argv),
            "train_data_sha256": sha256_of(args.train),
            "init_sha256": sha256_of(args.init) if args.init else "",
            "holdout_track_median_deg": f"{np.median(evaluate(hold_tracks)):.4f}",
            "linefit_holdout_track_median_deg": f"{np.median(lf_err):.4f}"}
    write_safetensors(args.out + ".safetensors", tensors, meta)
    with open(args.out + ".arch.yaml", "w") as f:
        f.write("# outpost event network: written by tools/train.py, read by outpost-quantize\n"
                "network: outpost-event\n"
                "features: outpost-features-v1\n"
                f"pulse_features: {FP}\n"
                f"event_features: {FE}\n"
                "max_pulses: 128\n"
                "pulse_layers: [pulse.0, pulse.1]\n"
                "pooling: mean_max\n"
                "head_layers: [head.0, head.1, head.2]\n"
                "activation: relu\n"
                "outputs: [dir_dx, dir_dy, dir_dz, log10_energy, track_logit]\n")
    print(f"wrote {args.out}.safetensors and {args.out}.arch.yaml")


if __name__ == "__main__":
    main()
