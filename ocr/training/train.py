"""Trains the CNN + CTC reader on a data set made by gen_data.py and exports ONNX.

Width bucketing: crops are left-aligned in the 256-px input and mostly shorter; batches are
formed from samples of similar content width and cut to that width (the network is fully
convolutional along x and the input is zero-padded, so this equals training at 256 px).
"""

import argparse
import json
import math
import time

import cv2
import numpy as np
import torch
from torch import nn

from gen_data import ALPHABET
from model import Exported, SevenSegNet

INPUT_H, INPUT_W = 32, 256


def encode(label):
    return [ALPHABET.index(c) + 1 for c in label]


def greedy(probs):
    """probs: (T, C) -> decoded string (collapse repeats, drop blanks)."""
    best = probs.argmax(-1)
    out, prev = [], 0
    for k in best:
        k = int(k)
        if k != prev and k != 0:
            out.append(ALPHABET[k - 1])
        prev = k
    return "".join(out)


def content_width(X):
    nz = np.abs(X).sum(axis=1) > 0  # (N, W)
    idx = np.where(nz.any(1), INPUT_W - np.argmax(nz[:, ::-1], axis=1), 0)
    return idx


def batches(widths, bs, rng):
    order = rng.permutation(len(widths))
    chunk = bs * 32
    out = []
    for s in range(0, len(order), chunk):
        part = order[s:s + chunk]
        part = part[np.argsort(widths[part], kind="stable")]
        for b in range(0, len(part), bs):
            out.append(part[b:b + bs])
    rng.shuffle(out)
    return out


def evaluate(net, X, labels, widths, bs=256):
    net.eval()
    correct = 0
    with torch.no_grad():
        order = np.argsort(widths)
        for b in range(0, len(order), bs):
            idx = order[b:b + bs]
            w = int(min(INPUT_W, max(64, math.ceil(widths[idx].max() / 32) * 32)))
            x = torch.from_numpy(X[idx, :, :w].astype(np.float32) / 40.0).unsqueeze(1)
            p = torch.softmax(net(x), 1).permute(0, 2, 1).numpy()
            for j, i in enumerate(idx):
                correct += greedy(p[j]) == labels[i]
    net.train()
    return correct / len(labels)


def augment(xb, widths, rng):
    """Cheap on-the-fly variation of the stored inputs (so that repeated epochs do not show
    identical pixels): horizontal rescale of the content by 0.85-1.15 (p 0.5, as the
    stretched test-time passes of the Rust reader), polarity inversion (p 0.15) and Gaussian
    noise sigma 0.05-0.25 (p 0.2). xb: (N, 32, w) float32, content left-aligned."""
    n, h, w = xb.shape
    out = xb.copy()
    for j in range(n):
        if rng.random() < 0.5:
            cw = int(widths[j])
            if cw >= 8:
                nw = int(np.clip(round(cw * rng.uniform(0.85, 1.15)), 4, w))
                r = cv2.resize(xb[j, :, :cw], (nw, h), interpolation=cv2.INTER_AREA if nw < cw else cv2.INTER_LINEAR)
                out[j] = 0
                out[j, :, :nw] = r
    inv = rng.random(n) < 0.15
    out[inv] = -out[inv]
    noisy = rng.random(n) < 0.2
    k = int(noisy.sum())
    if k:
        sig = rng.uniform(0.05, 0.25, (k, 1, 1)).astype(np.float32)
        out[noisy] += rng.standard_normal(out[noisy].shape, dtype=np.float32) * sig
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--epochs", type=float, default=3.0,
                    help="length of the schedule in passes over the training set (ignored with --steps/--budget-minutes)")
    ap.add_argument("--steps", type=int, default=0, help="length of the schedule in optimiser steps")
    ap.add_argument("--budget-minutes", type=float, default=0.0,
                    help="without --steps: measure the speed over the warm-up and fit the schedule into this "
                         "wall-clock budget (the step count is printed; pass it as --steps to reproduce the run)")
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this many steps without changing the schedule (replays a run that "
                         "--max-minutes stopped early)")
    ap.add_argument("--init", default="", help="start from this state dict (continued training)")
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--penalty", type=float, default=0.02,
                    help="confidence penalty (CTC label smoothing): weight of -mean entropy of the per-step output")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--max-minutes", type=float, default=75.0)
    ap.add_argument("--export-only", action="store_true", help="export --ckpt to --onnx and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    if a.export_only:
        net = SevenSegNet()
        net.load_state_dict(torch.load(a.ckpt))
        export(net, a.onnx)
        return
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    d = np.load(a.train)
    X, labels = d["X"], d["labels"]
    v = np.load(a.val)
    Xv, lv = v["X"], v["labels"]
    wtr, wv = content_width(X), content_width(Xv)
    print(f"train {len(X)} val {len(Xv)} mean width {wtr.mean():.0f} threads {a.threads}", flush=True)
    targets = [encode(s) for s in labels]

    net = SevenSegNet()
    if a.init:
        net.load_state_dict(torch.load(a.init))
        print(f"continuing from {a.init}", flush=True)
    print(f"parameters {sum(p.numel() for p in net.parameters())}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(X) / a.bs)
    # schedule: linear warm-up to --lr over --warmup steps, then cosine decay to 1 % of it at
    # total_steps. The warm-up does not depend on total_steps, so a budgeted run (total fixed
    # after the warm-up from the measured speed) is reproduced exactly by --steps N.
    total_steps = a.steps or int(math.ceil(a.epochs * steps_per_epoch))
    budgeted = a.budget_minutes > 0 and not a.steps
    if budgeted:
        total_steps = 10 ** 9

    def lr_at(s):
        if s < a.warmup:
            return (s + 1) / a.warmup
        frac = min(1.0, (s - a.warmup) / max(1, total_steps - a.warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s))
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    t0 = time.time()
    c0 = time.process_time()
    step = 0
    stop = False
    best = -1.0
    history = []
    for ep in range(10 ** 6):
        run = 0.0
        for bi, idx in enumerate(batches(wtr, a.bs, rng)):
            # +12 % headroom for the horizontal rescale augmentation
            w = int(min(INPUT_W, max(64, math.ceil(wtr[idx].max() * 1.15 / 32) * 32)))
            xb = augment(X[idx, :, :w].astype(np.float32) / 40.0, wtr[idx], rng)
            x = torch.from_numpy(xb).unsqueeze(1)
            tg = [targets[i] for i in idx]
            tl = torch.tensor([len(t) for t in tg], dtype=torch.long)
            flat = torch.tensor([c for t in tg for c in t], dtype=torch.long)
            logits = net(x)  # N, C, T
            lp = logits.permute(2, 0, 1).log_softmax(2)
            il = torch.full((len(idx),), lp.shape[0], dtype=torch.long)
            loss = ctc(lp, flat, il, tl)
            if a.penalty > 0:
                # confidence penalty: discourage saturated per-step distributions
                ent = -(lp.exp() * lp).sum(2).mean()
                loss = loss - a.penalty * ent
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            if budgeted and step == a.warmup:
                per_step = (time.time() - t0) / step
                total_steps = max(a.warmup + 1, int(a.budget_minutes * 60 / per_step))
                print(f"{per_step:.2f} s/step over the warm-up: schedule of {total_steps} steps "
                      f"(reproduce with --steps {total_steps})", flush=True)
            run = 0.98 * run + 0.02 * float(loss) if bi else float(loss)
            if bi % 200 == 0:
                print(f"ep {ep} step {bi}/{steps_per_epoch} loss {run:.4f} lr {sched.get_last_lr()[0]:.5f} "
                      f"{time.time() - t0:.0f}s wall {time.process_time() - c0:.0f}s cpu", flush=True)
            if step >= total_steps or (a.stop_after and step >= a.stop_after):
                stop = True
                break
            if (time.time() - t0) / 60 > a.max_minutes:
                print(f"time budget reached, stopping early after step {step} (replay with --stop-after {step})",
                      flush=True)
                stop = True
                break
        acc = evaluate(net, Xv, lv, wv)
        history.append({"epoch": ep, "steps": step, "val_exact": acc, "wall_s": round(time.time() - t0)})
        print(f"epoch {ep} val exact {acc:.4f} ({time.time() - t0:.0f}s wall, {time.process_time() - c0:.0f}s cpu)", flush=True)
        torch.save(net.state_dict(), a.ckpt + f".ep{ep}")
        if acc >= best:
            best = acc
            torch.save(net.state_dict(), a.ckpt)
        if stop:
            break

    net.load_state_dict(torch.load(a.ckpt))
    export(net, a.onnx)
    print(json.dumps({"train_seconds": round(time.time() - t0), "cpu_seconds": round(time.process_time() - c0),
                      "steps": step, "best_val_exact": best, "history": history, "onnx": a.onnx}))


def export(net, path):
    """ONNX (opset 13) with a symbolic input width: the Rust reader runs the network at the
    content width rounded up to a multiple of 32 (>= 64), exactly as the training batches."""
    net.eval()
    dummy = torch.zeros(1, 1, INPUT_H, INPUT_W)
    torch.onnx.export(Exported(net), dummy, path, input_names=["image"], output_names=["probs"], opset_version=13,
                      dynamic_axes={"image": {3: "width"}, "probs": {1: "steps"}}, dynamo=False)


if __name__ == "__main__":
    main()
