"""Fits the confidence calibration on exactly what the Rust reader outputs.

Input: the CSVs written by `metcon-ocr features DIR --model sevenseg.onnx` over the
calibration set (seed 2, the validation seed: never used for training or the committed test
set): `--crops` (fixed regions: three passes at 100 / 88 / 112 % width, combined) and
`--scenes` (phone photos: localisation, grow-and-confirm, three passes; read with
`--calibration` set to the crop fit, because the score ranks a photo's candidates).

Model (implemented identically in Rust, `decode::Calibration`; README.md has the details):
  z = bias + w . features       (lp, ln_min_step, ln_min_char, point_alt, agree, len,
                                lp_min, edge_left, edge_right, ln_point_alt; see decode.rs)
  confidence = piecewise-linear monotone map of z (knots), implausible strings capped at 0.3
1. Cross-fitted scores: each half of the crops scored by a logistic regression (L2) fitted
   on the other half; the largest set of top cross-fitted scores whose wrong-rate is <=
   --target (0.25 %, half the 0.5 % goal) fixes how many crops are accepted.
2. The final logistic is fitted on all crops; the cut z* keeps the same number above it.
3. Knots: isotonic P(correct | z), held below 0.85 for z < z* and raised to >= 0.85 above,
   so that "confidence >= 0.85" is exactly "z >= z*".
4. Photos: the same map with a score offset (<= 0) chosen on the calibration scenes so that
   no accepted scene reading is wrong there; a region grown sideways that reads differently
   caps the confidence at 0.5 and a one-character photo reading at 0.8 (Rust rules).
"""

import argparse
import csv
import json

import numpy as np

FEATURES = ["lp", "ln_min_step", "ln_min_char", "point_alt", "agree", "len", "lp_min", "edge_left", "edge_right",
            "ln_point_alt"]
CAP = 0.3
DISAGREE_CAP = 0.5
THRESHOLD = 0.85


def plausible(t):
    if not t:
        return False
    if set(t) == {"-"}:
        return True
    body = t[1:] if t.startswith("-") else t
    if not body or "-" in body:
        return False
    if body.count(".") > 1 or body.startswith(".") or body.endswith("."):
        return False
    return any(c.isdigit() for c in body)


def load(path):
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        for k in ("expected", "text", "pass0", "pass1", "pass2"):
            r[k] = r[k][1:] if r[k].startswith("'") else r[k]
    X = np.array([[float(r[k]) for k in FEATURES] for r in rows], np.float64)
    y = np.array([r["expected"] == r["text"] for r in rows], bool)
    texts = [r["text"] for r in rows]
    return rows, X, y, texts


def fit_logistic(X, y, l2=1e-3, iters=60):
    """Logistic regression on standardised features by Newton steps with an L2 penalty."""
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = np.concatenate([(X - mu) / sd, np.ones((len(X), 1))], 1)
    w = np.zeros(Z.shape[1])
    reg = np.full(Z.shape[1], l2 * len(X))
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(Z @ w, -40, 40)))
        g = Z.T @ (p - y) + reg * w
        H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg + 1e-9)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    weights = w[:-1] / sd
    bias = w[-1] - (w[:-1] * mu / sd).sum()
    return weights, bias


def isotonic(z, y):
    """Pool-adjacent-violators: non-decreasing fit of y on sorted z. Returns (z_sorted, fit)."""
    o = np.argsort(z, kind="stable")
    zs, ys = z[o], y[o].astype(np.float64)
    vals, wts, ends = [], [], []
    for i, v in enumerate(ys):
        vals.append(v)
        wts.append(1.0)
        ends.append(i)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, e2 = vals.pop(), wts.pop(), ends.pop()
            v1, w1 = vals.pop(), wts.pop()
            ends.pop()
            vals.append((v1 * w1 + v2 * w2) / (w1 + w2))
            wts.append(w1 + w2)
            ends.append(e2)
    fit = np.empty(len(ys))
    start = 0
    for v, e in zip(vals, ends):
        fit[start:e + 1] = v
        start = e + 1
    return zs, fit


def cut_for(z, ok, target, min_above=3):
    """Smallest z* such that readings with z >= z* have a wrong-rate <= target and every
    wrong reading in the accepted set has at least `min_above` readings above it."""
    o = np.argsort(-z, kind="stable")
    zs, oks = z[o], ok[o]
    best = np.inf
    wrong = 0
    for i in range(len(zs)):
        wrong += int(not oks[i])
        n = i + 1
        if i + 1 < len(zs) and zs[i + 1] == zs[i]:
            continue  # ties: decide on the whole group
        if wrong / n <= target:
            # no error among the first min_above readings of the accepted set
            if wrong == 0 or np.argmin(oks[:n]) >= min_above:
                best = zs[i]
    return best


def build_knots(z, y, zcut, n_knots=48):
    zs, fit = isotonic(z, y)
    qs = np.unique(np.quantile(zs, np.linspace(0, 1, n_knots)))
    cs = np.interp(qs, zs, fit)
    knots = []
    eps = 1e-3
    below = [(a, min(c, THRESHOLD - 0.002)) for a, c in zip(qs, cs) if a < zcut - eps]
    above = [(a, max(c, THRESHOLD)) for a, c in zip(qs, cs) if a > zcut]
    c_at = float(np.interp(zcut, zs, fit))
    knots = below + [(zcut - eps, min(c_at, THRESHOLD - 0.001)), (zcut, max(THRESHOLD, min(c_at, 0.999)))] + above
    if not above:
        knots.append((zcut + 10.0, max(THRESHOLD, c_at)))
    # strictly increasing z, non-decreasing confidence, confidence < 1
    out = []
    for a, c in knots:
        c = float(min(max(c, 0.0), 0.999))
        if out and a <= out[-1][0]:
            continue
        if out:
            c = max(c, out[-1][1])
        out.append((float(a), c))
    return out


def apply_map(knots, z):
    k = np.array(knots)
    return np.interp(z, k[:, 0], k[:, 1])


def confidences(cal, X, texts, rows=None, photo=False):
    z = X @ np.array(cal["weights"]) + cal["bias"]
    if photo:
        z = z + cal["photo_offset"]
    c = apply_map(cal["knots"], z)
    for i, t in enumerate(texts):
        if not plausible(t):
            c[i] = min(c[i], CAP)
        if photo and rows is not None:
            if rows[i]["grown_disagrees"] == "1":
                c[i] = min(c[i], DISAGREE_CAP)
            if len(t) <= 1:
                c[i] = min(c[i], 0.8)
    return c


def report(conf, y, thr=THRESHOLD):
    acc = conf >= thr
    wrong = int((acc & ~y).sum())
    return {"n": int(len(y)), "exact": round(float(y.mean()), 4), "coverage": round(float(acc.mean()), 4),
            "accepted": int(acc.sum()), "wrong_accepted": wrong,
            "wrong_rate": round(wrong / max(1, int(acc.sum())), 5)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", required=True, help="features CSV of the calibration crops")
    ap.add_argument("--scenes", required=True, help="features CSV of the calibration scenes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", type=float, default=0.0025,
                    help="wrong-rate allowed among accepted calibration crops (a margin under the 0.5 %% goal)")
    a = ap.parse_args()

    rows, X, y, texts = load(a.crops)
    plaus = np.array([plausible(t) for t in texts])
    # 1. cross-fitted scores: each half scored by the logistic fitted on the other half, so
    #    every crop has an out-of-sample score
    half = np.arange(len(rows)) % 2 == 0
    zc = np.empty(len(rows))
    for part in (half, ~half):
        w_, b_ = fit_logistic(X[~part & plaus], y[~part & plaus])
        zc[part] = X[part] @ w_ + b_
    # 2. coverage: the largest set of top cross-fitted scores with a wrong-rate <= target
    zcc = cut_for(zc[plaus], y[plaus], a.target)
    n_acc = int((plaus & (zc >= zcc)).sum()) if np.isfinite(zcc) else 0
    cross = plaus & (zc >= zcc)
    # 3. final logistic on all crops; the cut keeps the same number of crops above it
    weights, bias = fit_logistic(X[plaus], y[plaus])
    z = X @ weights + bias
    zp = np.sort(z[plaus])[::-1]
    zcut = float(zp[n_acc - 1]) if n_acc > 0 else float(z.max()) + 1.0
    knots = build_knots(z[plaus], y[plaus], zcut)
    cal = {"method": "logistic score of the three-pass features, isotonic map; the 0.85 cut keeps as many "
                     f"calibration crops as the cross-fitted scores accept at a wrong-rate <= {a.target} "
                     "(training/calibrate.py)",
           "features": FEATURES, "weights": [float(v) for v in weights], "bias": float(bias),
           "knots": knots, "implausible_cap": CAP, "photo_disagree_cap": DISAGREE_CAP, "photo_offset": 0.0,
           "z_cut": zcut, "target": a.target}
    conf = confidences(cal, X, texts)
    cal["crops_crossfit_accepted"] = {"n": int(len(rows)), "coverage": round(float(cross.mean()), 4),
                                      "accepted": int(cross.sum()), "wrong_accepted": int((cross & ~y).sum()),
                                      "wrong_rate": round(float((cross & ~y).sum() / max(1, cross.sum())), 5)}
    cal["crops_all"] = report(conf, y)
    cal["crops_curve"] = {f"{t:.2f}": report(conf, y, t) for t in (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)}

    srows, SX, sy, stexts = load(a.scenes)
    # photo offset: the largest offset <= 0 (0, -0.25, ...) with no wrong accepted scene reading
    for off in np.arange(0.0, -20.0, -0.25):
        cal["photo_offset"] = float(off)
        sc = confidences(cal, SX, stexts, srows, photo=True)
        r = report(sc, sy)
        if r["wrong_accepted"] == 0:
            break
    cal["scenes"] = report(confidences(cal, SX, stexts, srows, photo=True), sy)
    with open(a.out, "w") as f:
        json.dump(cal, f, indent=1)
    print(json.dumps({k: cal[k] for k in ("weights", "bias", "z_cut", "photo_offset", "crops_crossfit_accepted",
                                          "crops_all", "scenes")}, indent=1))


if __name__ == "__main__":
    main()
