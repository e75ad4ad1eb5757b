"""Renders a synthetic data set of model inputs (see synth.py) into one .npz file.

Sample i of a set is drawn from numpy.random.default_rng([seed, i]): the output depends only
on (seed, start, count), never on the number of worker processes.
"""

import argparse
import multiprocessing as mp
import time

import cv2
import numpy as np

import synth

ALPHABET = "0123456789.-"  # CTC class k+1 is ALPHABET[k]; class 0 is the blank


def _one(args):
    seed, i = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng([seed, i])
    img, label = synth.make_crop(rng)
    interp = cv2.INTER_AREA if rng.random() < 0.6 else cv2.INTER_LINEAR
    x = synth.preprocess(img, interp)
    return np.round(x * 40).astype(np.int8), label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    jobs = [(a.seed, i) for i in range(a.start, a.start + a.count)]
    if a.workers > 1:
        with mp.Pool(a.workers) as pool:
            res = pool.map(_one, jobs, chunksize=256)
    else:
        res = [_one(j) for j in jobs]
    X = np.stack([r[0] for r in res])
    labels = np.array([r[1] for r in res])
    np.savez(a.out, X=X, labels=labels)
    print(f"{a.out}: {len(res)} samples in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
