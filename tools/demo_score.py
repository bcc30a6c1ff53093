#!/usr/bin/python3
"""demo_score.py — how well the appliance reconstructed the demo's simulated tracks.

  demo_score.py TRUTH.csv SEGMENT.h5 ...

Reads the result segments the north receiver holds (h5py) and the simulator's truth, and
prints one JSON object: the model named in the segments, how many tracks were scored, the
median angular error of the stored direction and of the first guess stored beside it.
"""
import csv
import json
import sys

import h5py
import numpy as np


def main():
    truth = {}
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            if r["kind"] == "track":
                truth[(int(r["stream"]), int(r["sequence"]))] = (float(r["dir_x"]), float(r["dir_y"]), float(r["dir_z"]))
    err, gerr, model = [], [], ""
    for path in sys.argv[2:]:
        with h5py.File(path, "r") as f:
            m = f.attrs["model"]
            model = m.decode() if isinstance(m, bytes) else str(m)
            rows = f["results"][:]
        for r in rows:
            t = truth.get((int(r["stream_id"]), int(r["sequence"])))
            if t is None or r["flags"] & 3:
                continue
            for src, out in ((("dir_x", "dir_y", "dir_z"), err), (("guess_dir_x", "guess_dir_y", "guess_dir_z"), gerr)):
                c = r[src[0]] * t[0] + r[src[1]] * t[1] + r[src[2]] * t[2]
                out.append(float(np.degrees(np.arccos(np.clip(c, -1, 1)))))
    print(json.dumps({"model": model, "tracks": len(err),
                      "median_deg": round(float(np.median(err)), 2) if err else None,
                      "first_guess_median_deg": round(float(np.median(gerr)), 2) if gerr else None}))


if __name__ == "__main__":
    main()
