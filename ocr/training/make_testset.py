"""Renders a labelled image set: the committed held-out evaluation set (seed 3, never used
in training or calibration) and the calibration set (seed 2, the validation seed; kept
outside the repository).

`crops/`: display crops as a fixed camera's region gives them (roi column "full"), JPEG q92;
`scenes/`: 1080p-class "phone photos" of scales, JPEG q60. Each folder has labels.csv
(filename,text[,roi]); scenes also get regions.csv (filename,x,y,w,h of the digits).
Crop i is drawn from default_rng([seed, i]), scene i from default_rng([seed, 100000 + i]).
"""

import argparse
import csv
import multiprocessing as mp
import os

import cv2
import numpy as np

import synth


def _crop(args):
    seed, i, cdir = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng([seed, i])
    img, label = synth.make_crop(rng)
    name = f"crop_{i:04d}.jpg"
    cv2.imwrite(os.path.join(cdir, name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return name, label


def _scene(args):
    seed, i, sdir = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng([seed, 100000 + i])
    img, label, box = synth.make_scene(rng)
    name = f"scene_{i:03d}.jpg"
    cv2.imwrite(os.path.join(sdir, name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
    return name, label, box


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--crops", type=int, default=300)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    cdir = os.path.join(a.out, "crops")
    sdir = os.path.join(a.out, "scenes")
    os.makedirs(cdir, exist_ok=True)
    os.makedirs(sdir, exist_ok=True)
    pool = mp.Pool(a.workers) if a.workers > 1 else None
    mapper = pool.imap if pool else map
    with open(os.path.join(cdir, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "text", "roi"])
        for name, label in mapper(_crop, [(a.seed, i, cdir) for i in range(a.crops)]):
            w.writerow([name, label, "full"])
    with open(os.path.join(sdir, "labels.csv"), "w", newline="") as f, \
            open(os.path.join(sdir, "regions.csv"), "w", newline="") as g:
        w = csv.writer(f)
        r = csv.writer(g)
        w.writerow(["filename", "text"])
        r.writerow(["filename", "x", "y", "w", "h"])
        for name, label, box in mapper(_scene, [(a.seed, i, sdir) for i in range(a.scenes)]):
            w.writerow([name, label])
            r.writerow([name, *box])
    if pool:
        pool.close()


if __name__ == "__main__":
    main()
