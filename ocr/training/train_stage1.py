"""Stage 1 of the committed model, kept verbatim: the script that trained the first 938 steps
(0.6 epoch, one-cycle schedule) from scratch into $OCR_DATA/ckpt.pt. Stage 2 (`train.py
--init`) continues from that checkpoint; see README.md. Only the docstring differs from the
script that ran.

Trains the CNN + CTC reader on a data set made by gen_data.py and exports ONNX.

Width bucketing: crops are left-aligned in the 256-px input and mostly shorter; batches are
formed from samples of similar content width and cut to that width (the network is fully
convolutional along x and the input is zero-padded, so this equals training at 256 px).
"""

import argparse
import json
import math
import time

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--epochs", type=float, default=1.6)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--max-minutes", type=float, default=45.0)
    ap.add_argument("--export-only", action="store_true", help="export --ckpt to --onnx and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
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
    print(f"train {len(X)} val {len(Xv)} mean width {wtr.mean():.0f}", flush=True)
    targets = [encode(s) for s in labels]

    net = SevenSegNet()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(X) / a.bs)
    total_steps = int(math.ceil(a.epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total_steps, pct_start=0.15)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    t0 = time.time()
    step = 0
    stop = False
    for ep in range(int(math.ceil(a.epochs))):
        run = 0.0
        for bi, idx in enumerate(batches(wtr, a.bs, rng)):
            w = int(min(INPUT_W, max(64, math.ceil(wtr[idx].max() / 32) * 32)))
            xb = X[idx, :, :w].astype(np.float32) / 40.0
            # cheap extra augmentation: polarity inversion, additive noise
            inv = rng.random(len(idx)) < 0.15
            xb[inv] = -xb[inv]
            noisy = rng.random(len(idx)) < 0.2
            xb[noisy] += rng.normal(0, 0.15, xb[noisy].shape).astype(np.float32)
            x = torch.from_numpy(xb).unsqueeze(1)
            tg = [targets[i] for i in idx]
            tl = torch.tensor([len(t) for t in tg], dtype=torch.long)
            flat = torch.tensor([c for t in tg for c in t], dtype=torch.long)
            logits = net(x)  # N, C, T
            lp = logits.permute(2, 0, 1).log_softmax(2)
            il = torch.full((len(idx),), lp.shape[0], dtype=torch.long)
            loss = ctc(lp, flat, il, tl)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            run = 0.98 * run + 0.02 * float(loss) if bi else float(loss)
            if bi % 200 == 0:
                print(f"ep {ep} step {bi}/{steps_per_epoch} loss {run:.4f} lr {sched.get_last_lr()[0]:.5f} {time.time() - t0:.0f}s", flush=True)
            if step >= total_steps:
                stop = True
                break
            if (time.time() - t0) / 60 > a.max_minutes:
                print("time budget reached, stopping early", flush=True)
                stop = True
                break
        acc = evaluate(net, Xv, lv, wv)
        print(f"epoch {ep} val exact {acc:.4f} ({time.time() - t0:.0f}s)", flush=True)
        torch.save(net.state_dict(), a.ckpt)
        if stop:
            break

    export(net, a.onnx)
    print(json.dumps({"train_seconds": round(time.time() - t0), "steps": step, "onnx": a.onnx}))


def export(net, path):
    net.eval()
    dummy = torch.zeros(1, 1, INPUT_H, INPUT_W)
    torch.onnx.export(Exported(net), dummy, path, input_names=["image"], output_names=["probs"], opset_version=13,
                      dynamo=False)


if __name__ == "__main__":
    main()
