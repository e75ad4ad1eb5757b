"""Renders the committed held-out evaluation set from seed 3 (never used in training):
`crops/` (display crops as a fixed camera's region gives them; roi column "full") and `scenes/` (1080p-class
"phone photos" of scales), each with labels.csv (filename,text); scenes also get
regions.csv (filename,x,y,w,h of the digits)."""

import argparse
import csv
import os

import cv2
import numpy as np

import synth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--crops", type=int, default=300)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    cdir = os.path.join(a.out, "crops")
    sdir = os.path.join(a.out, "scenes")
    os.makedirs(cdir, exist_ok=True)
    os.makedirs(sdir, exist_ok=True)
    with open(os.path.join(cdir, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "text", "roi"])
        for i in range(a.crops):
            rng = np.random.default_rng([a.seed, i])
            img, label = synth.make_crop(rng)
            name = f"crop_{i:04d}.jpg"
            cv2.imwrite(os.path.join(cdir, name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            w.writerow([name, label, "full"])
    with open(os.path.join(sdir, "labels.csv"), "w", newline="") as f, \
            open(os.path.join(sdir, "regions.csv"), "w", newline="") as g:
        w = csv.writer(f)
        r = csv.writer(g)
        w.writerow(["filename", "text"])
        r.writerow(["filename", "x", "y", "w", "h"])
        for i in range(a.scenes):
            rng = np.random.default_rng([a.seed, 100000 + i])
            img, label, box = synth.make_scene(rng)
            name = f"scene_{i:03d}.jpg"
            cv2.imwrite(os.path.join(sdir, name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
            w.writerow([name, label])
            r.writerow([name, *box])


if __name__ == "__main__":
    main()
