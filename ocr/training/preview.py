"""Renders a grid of generated crops (with their labels) to a PNG for visual inspection:
`python preview.py --seed 9 --count 48 --out /tmp/grid.png`."""

import argparse

import cv2
import numpy as np

import synth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--cell", type=int, default=96, help="cell height in pixels")
    ap.add_argument("--input", action="store_true", help="show the 32 px model input instead of the crop")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cw, chh = a.cell * 4, a.cell + 18
    rows = (a.count + a.cols - 1) // a.cols
    grid = np.full((rows * chh, a.cols * cw, 3), 255, np.uint8)
    for k in range(a.count):
        i = a.start + k
        rng = np.random.default_rng([a.seed, i])
        img, label = synth.make_crop(rng)
        if a.input:
            x = synth.preprocess(img)
            g = np.clip(x * 40 + 128, 0, 255).astype(np.uint8)
            img = np.repeat(g[..., None], 3, 2)
        h, w = img.shape[:2]
        s = min(a.cell / h, cw / w)
        r = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_NEAREST if s > 1 else cv2.INTER_AREA)
        y0, x0 = (k // a.cols) * chh, (k % a.cols) * cw
        grid[y0:y0 + r.shape[0], x0:x0 + r.shape[1]] = r
        cv2.putText(grid, f"{i}: '{label}' {h}px", (x0 + 2, y0 + chh - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(a.out, grid[..., ::-1])


if __name__ == "__main__":
    main()
