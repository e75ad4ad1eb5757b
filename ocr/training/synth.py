"""Synthetic seven-segment display generator for the METCON display reader.

Every sample is drawn from `numpy.random.default_rng([seed, index])`, so a data set is a
pure function of (seed, index range) and does not depend on the number of worker processes.

Pipeline for one *crop* (see README.md for every range):
  text -> digit cells -> segment polygons (shape, stroke, gap, slant) -> display canvas
  (LCD / backlit LCD / LED / VFD colours, ghost segments, LCD shadow, LED bloom, VFD mesh,
  unit marks, annotations, icons, window border, bezel) -> lighting (gradients, glare,
  shadows, uneven light) -> optics (defocus / motion blur) -> camera (perspective, rotation,
  downscale to low resolution, partial cut of the leading digit) -> sensor (noise, colour
  cast, gamma, low contrast, moire, JPEG, re-upscaling).
A *scene* pastes a display into a 1080p "phone photo" of a scale with keypad, labels and
clutter.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Segment order: a (top), b (top right), c (bottom right), d (bottom), e (bottom left),
# f (top left), g (middle).
DIGITS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
    "-": "g",
    " ": "",
}
VARIANTS = {"6": ["acdefg", "cdefg"], "7": ["abc", "abcf"], "9": ["abcdfg", "abcfg"]}
UNITS = ["g", "kg", "ct", "oz", "ozt", "dwt", "%", "lb", "mg", "gn", "tl", "pcs"]
ANNOTATIONS = ["NET", "GROSS", "TARE", "ZERO", "STABLE", "M+", "HOLD", "PCS", "AUTO", "CAL", "B/G", "PT"]

INPUT_H = 32
INPUT_W = 256


def _u(rng, a, b):
    return float(rng.uniform(a, b))


def _chance(rng, p):
    return bool(rng.random() < p)


# ----------------------------------------------------------------------------- text


def random_text(rng):
    """Returns (cells, dp_after, label, small_last).

    cells: list of characters per digit cell (' ' = blank cell, ghosts only);
    dp_after: set of cell indices followed by a lit decimal point;
    label: the string as displayed ('' if nothing lit).
    """
    n = int(rng.choice(np.arange(1, 9), p=[0.03, 0.06, 0.10, 0.17, 0.22, 0.21, 0.12, 0.09]))
    special = rng.random()
    if special < 0.015:
        cells = ["-"] * n
        return cells, set(), "-" * n, False
    if special < 0.03:
        return [" "] * n, set(), "", False
    decimals = 0
    if n >= 2 and not _chance(rng, 0.22):
        decimals = int(rng.integers(1, min(4, n - 1) + 1))
    negative = _chance(rng, 0.1) and n >= 2
    style = rng.random()
    avail = n - (1 if negative else 0)
    int_places = avail - decimals
    if style < 0.25 and int_places >= 1:
        # leading zeros shown: every cell lit
        int_digits = int_places
        digits = [str(int(d)) for d in rng.integers(0, 10, size=avail)]
    else:
        # blank-padded value
        if int_places <= 0:
            int_digits = 0
        else:
            int_digits = int(rng.integers(1, int_places + 1))
        frac = [str(int(d)) for d in rng.integers(0, 10, size=decimals)]
        if int_digits == 0:
            intd = []
        elif int_digits == 1:
            intd = [str(int(rng.integers(0, 10)))]
        else:
            intd = [str(int(rng.integers(1, 10)))] + [str(int(d)) for d in rng.integers(0, 10, size=int_digits - 1)]
        if decimals > 0 and not intd:
            if int_places < 1:
                # no cell left for the zero before the point ("-.54"): scales show "-0.5"
                decimals -= 1
                frac = frac[:decimals]
            intd = ["0"]
            int_digits = 1
        digits = intd + frac
        if _chance(rng, 0.1) and digits:
            # zero readings are common on scales
            digits = ["0"] * len(digits)
    lit = (["-"] if negative else []) + digits
    cells = [" "] * (n - len(lit)) + lit
    if negative and len(lit) < n and _chance(rng, 0.3):
        # minus sign in the leftmost cell, away from the number (label unchanged)
        cells = ["-"] + [" "] * (n - len(lit)) + digits
    dp_after = set()
    if decimals > 0:
        idx = n - 1 - decimals
        if idx >= 0 and cells[idx] != " ":
            dp_after.add(idx)
    label = ""
    for i, c in enumerate(cells):
        if c != " ":
            label += c
        if i in dp_after:
            label += "."
    if label.startswith("."):
        # point without a digit before it: keep a leading zero on the display
        return random_text(rng)
    small_last = n >= 3 and decimals >= 1 and _chance(rng, 0.12)
    return cells, dp_after, label, small_last


# ----------------------------------------------------------------------------- geometry


def segment_polys(w, h, t, gap, shape):
    """Polygons of the seven segments of a digit box w x h (origin top-left), stroke t."""
    polys = {}
    ht = t / 2.0
    ym = h / 2.0

    def hseg(x0, x1, y):
        if shape == "hex":
            return [(x0, y), (x0 + ht, y - ht), (x1 - ht, y - ht), (x1, y), (x1 - ht, y + ht), (x0 + ht, y + ht)]
        if shape == "rect":
            return [(x0 + ht * 0.6, y - ht), (x1 - ht * 0.6, y - ht), (x1 - ht * 0.6, y + ht), (x0 + ht * 0.6, y + ht)]
        # rounded (stadium): drawn as a thick line with round caps
        return ("round", (x0 + ht, y), (x1 - ht, y))

    def vseg(x, y0, y1, side):
        if shape == "hex":
            return [(x, y0), (x + ht, y0 + ht), (x + ht, y1 - ht), (x, y1), (x - ht, y1 - ht), (x - ht, y0 + ht)]
        if shape == "rect":
            return [(x - ht, y0 + ht * 0.6), (x + ht, y0 + ht * 0.6), (x + ht, y1 - ht * 0.6), (x - ht, y1 - ht * 0.6)]
        return ("round", (x, y0 + ht), (x, y1 - ht))

    xl, xr = ht, w - ht
    yt, yb = ht, h - ht
    polys["a"] = hseg(xl + gap, xr - gap, yt)
    polys["d"] = hseg(xl + gap, xr - gap, yb)
    polys["g"] = hseg(xl + gap, xr - gap, ym)
    polys["b"] = vseg(xr, yt + gap, ym - gap, "r")
    polys["c"] = vseg(xr, ym + gap, yb - gap, "r")
    polys["e"] = vseg(xl, ym + gap, yb - gap, "l")
    polys["f"] = vseg(xl, yt + gap, ym - gap, "l")
    return polys


def _draw_poly(mask, poly, ox, oy, shear, h, t, value=1.0):
    def tr(p):
        x, y = p
        return (ox + x + (h - y) * shear, oy + y)

    if isinstance(poly, tuple) and poly[0] == "round":
        p0, p1 = tr(poly[1]), tr(poly[2])
        cv2.line(mask, (int(round(p0[0] * 4)), int(round(p0[1] * 4))), (int(round(p1[0] * 4)), int(round(p1[1] * 4))),
                 value, thickness=max(1, int(round(t))), lineType=cv2.LINE_AA, shift=2)
        return
    pts = np.array([tr(p) for p in poly], dtype=np.float64)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], value, lineType=cv2.LINE_AA, shift=4)


def _put_text(mask, text, x, y, height, thick, font, value=1.0):
    """Draws text into a float mask (max with `value`) or a float RGB image (blend to colour `value`)."""
    scale = cv2.getFontScaleFromHeight(font, max(4, int(height)), max(1, thick))
    tmp = np.zeros(mask.shape[:2], np.uint8)
    cv2.putText(tmp, text, (int(x), int(y)), font, scale, 255, max(1, thick), cv2.LINE_AA)
    m = tmp.astype(np.float32) / 255.0
    if mask.ndim == 2:
        np.maximum(mask, m * float(value), out=mask)
    else:
        col = np.array(value, np.float32).reshape(1, 1, -1)
        mask[...] = mask * (1 - m[..., None]) + col * m[..., None]
    (tw, th), _ = cv2.getTextSize(text, font, scale, max(1, thick))
    return tw, th


FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX]


# ----------------------------------------------------------------------------- display


def _palette(rng):
    kind = rng.choice(["lcd", "backlit", "led", "vfd"], p=[0.42, 0.2, 0.28, 0.1])
    p = {"kind": str(kind)}
    if kind == "lcd":
        base = rng.choice(4)
        if base == 0:  # neutral grey
            g = _u(rng, 150, 215)
            bg = np.array([g, g + _u(rng, -5, 8), g + _u(rng, -10, 5)])
        elif base == 1:  # greenish
            g = _u(rng, 140, 200)
            bg = np.array([g - _u(rng, 10, 30), g + _u(rng, 0, 15), g - _u(rng, 5, 30)])
        elif base == 2:  # yellowish
            g = _u(rng, 150, 210)
            bg = np.array([g + _u(rng, 0, 15), g + _u(rng, 0, 10), g - _u(rng, 20, 50)])
        else:  # silver/bluish
            g = _u(rng, 150, 210)
            bg = np.array([g - _u(rng, 5, 15), g, g + _u(rng, 0, 15)])
        p["bg"] = bg
        p["fg"] = np.array([_u(rng, 10, 60)] * 3) + rng.uniform(-8, 8, 3)
        p["alpha"] = _u(rng, 0.45, 0.97)
        p["ghost"] = _u(rng, 0.0, 0.14) if _chance(rng, 0.75) else 0.0
        p["shadow"] = _u(rng, 0.05, 0.35) if _chance(rng, 0.5) else 0.0
        p["glow"] = 0.0
    elif kind == "backlit":
        light_digits = _chance(rng, 0.55)
        c = rng.choice(5)
        cols = [(40, 80, 220), (60, 190, 80), (230, 150, 40), (200, 210, 200), (90, 160, 230)]
        bg = np.array(cols[c], dtype=np.float64) * _u(rng, 0.6, 1.1)
        if light_digits:
            p["bg"] = bg * _u(rng, 0.3, 0.8)
            p["fg"] = np.clip(np.array([235, 240, 245]) + rng.uniform(-30, 10, 3), 0, 255)
            if _chance(rng, 0.3):
                p["fg"] = np.clip(bg * 1.6 + 60, 0, 255)
        else:
            p["bg"] = bg
            p["fg"] = np.clip(bg * _u(rng, 0.05, 0.3), 0, 255)
        p["alpha"] = _u(rng, 0.45, 0.97)
        p["ghost"] = _u(rng, 0.0, 0.12) if _chance(rng, 0.6) else 0.0
        p["shadow"] = _u(rng, 0.05, 0.2) if (not light_digits and _chance(rng, 0.3)) else 0.0
        p["glow"] = _u(rng, 0.0, 0.4) if light_digits else 0.0
    elif kind == "led":
        cols = [(255, 30, 25), (255, 60, 20), (40, 255, 70), (255, 170, 20), (60, 130, 255), (240, 240, 240), (255, 90, 60)]
        fg = np.array(cols[int(rng.choice(len(cols), p=[0.35, 0.12, 0.18, 0.15, 0.07, 0.06, 0.07]))], dtype=np.float64)
        p["fg"] = np.clip(fg * _u(rng, 0.75, 1.0), 0, 255)
        p["bg"] = np.clip(fg * _u(rng, 0.0, 0.14) + _u(rng, 0, 25), 0, 255)
        p["alpha"] = 1.0
        p["ghost"] = _u(rng, 0.02, 0.14) if _chance(rng, 0.5) else 0.0
        p["shadow"] = 0.0
        p["glow"] = _u(rng, 0.2, 1.3)
    else:  # vfd
        fg = np.array([80, 255, 220], dtype=np.float64) + rng.uniform(-40, 0, 3)
        p["fg"] = np.clip(fg, 0, 255)
        p["bg"] = np.array([_u(rng, 5, 30), _u(rng, 15, 40), _u(rng, 15, 40)])
        p["alpha"] = 1.0
        p["ghost"] = _u(rng, 0.02, 0.1) if _chance(rng, 0.5) else 0.0
        p["shadow"] = 0.0
        p["glow"] = _u(rng, 0.3, 1.0)
    return p


def render_display(rng, cells=None, dp_after=None, label=None, small_last=None, H=None):
    """Renders one display. Returns dict with img (float RGB 0..255), label, digits box
    (x0, y0, x1, y1 of lit+blank digit cells), text box (digits + unit marks), window box,
    the lit mask, the mask of lit decimal points, and one element per label character
    (character, canvas box) for the legibility check.

    H is the digit height on the canvas (default 30-52 px); crops pass a height close to
    the final one so that low-resolution crops are cheap to render."""
    if cells is None:
        cells, dp_after, label, small_last = random_text(rng)
    pal = _palette(rng)
    kind = pal["kind"]
    if H is None:
        H = _u(rng, 30, 52)  # digit height in canvas pixels
    W = H * _u(rng, 0.42, 0.66)
    t = H * _u(rng, 0.08, 0.19) if kind != "led" else H * _u(rng, 0.1, 0.2)
    # segments stay bars, not blobs: stroke at most 20-32 % of the digit width
    t = min(t, W * _u(rng, 0.2, 0.32))
    gap = H * _u(rng, 0.0, 0.04) if kind != "led" else H * _u(rng, 0.01, 0.05)
    shape = str(rng.choice(["hex", "rect", "round"], p=[0.5, 0.3, 0.2]))
    if kind == "led" and _chance(rng, 0.5):
        shape = "rect" if _chance(rng, 0.5) else "round"
    shear = math.tan(math.radians(_u(rng, 0, 15) if _chance(rng, 0.75) else 0.0))
    spacing = W * _u(rng, 0.18, 0.55)
    # decimal point: a square or dot about one stroke wide (diameter 0.9-1.5 strokes), as on
    # real scales; the digit pitch always leaves room for it between the cells
    dp_r = max(0.9, t * _u(rng, 0.45, 0.75))
    dp_comma = _chance(rng, 0.08)  # comma-shaped point (small tail), still labelled "."
    spacing = max(spacing, 2 * dp_r + 0.35 * t)
    dp_pos = _u(rng, 0.3, 0.6)  # centre of the point across the gap (0 = previous digit)
    variants = {k: v[int(rng.integers(len(v)))] for k, v in VARIANTS.items()}
    n = len(cells)
    small_scale = _u(rng, 0.55, 0.8) if small_last else 1.0

    # layout of cells
    xs = []
    x = 0.0
    for i in range(n):
        sc = small_scale if (i == n - 1 and small_last) else 1.0
        xs.append((x, W * sc, H * sc))
        x += W * sc + spacing
        if i == n - 2 and small_last:
            x += spacing * 0.5
    digits_w = x - spacing + H * shear
    unit = None
    if _chance(rng, 0.65):
        unit = str(rng.choice(UNITS))
    pad_l = H * _u(rng, 0.25, 0.9)
    pad_r = H * _u(rng, 0.2, 0.8)
    pad_t = H * _u(rng, 0.2, 0.8)
    pad_b = H * _u(rng, 0.2, 0.7)
    annot_top = _chance(rng, 0.35)
    annot_left = _chance(rng, 0.3)
    if annot_top:
        pad_t += H * 0.35
    if annot_left:
        pad_l += H * 0.5
    unit_w = H * 0.9 if unit else 0.0
    win_w = pad_l + digits_w + unit_w + pad_r
    win_h = pad_t + H + pad_b
    bez = H * _u(rng, 0.15, 1.2)
    cw, ch = int(win_w + 2 * bez), int(win_h + 2 * bez)
    ox, oy = bez + pad_l, bez + pad_t

    lit = np.zeros((ch, cw), np.float32)
    ghost = np.zeros((ch, cw), np.float32)
    dp_mask = np.zeros((ch, cw), np.float32)
    elements = []  # (character, (x0, y0, x1, y1)) in label order

    for i, c in enumerate(cells):
        cx, w, h = xs[i]
        dy = H - h  # bottom aligned
        tt = t * (h / H)
        polys = segment_polys(w, h, tt, gap * (h / H), shape)
        on = variants.get(c, DIGITS[c])
        for s, poly in polys.items():
            _draw_poly(lit if s in on else ghost, poly, ox + cx, oy + dy, shear, h, tt)
        if c != " ":
            elements.append((c, (ox + cx, oy + dy, ox + cx + w + shear * h, oy + H)))
        # decimal point in the gap after the cell, on the baseline
        if i < n - 1 or i in dp_after:
            r = dp_r
            gap_w = spacing if i < n - 1 else spacing
            dpx = ox + cx + w + max(r + 0.1 * t, min(gap_w - r - 0.1 * t, gap_w * dp_pos))
            dpy = oy + H - r
            targets = [lit, dp_mask] if i in dp_after else [ghost]
            for target in targets:
                if shape == "round" or kind == "led":
                    cv2.circle(target, (int(dpx * 4), int(dpy * 4)), int(r * 4), 1.0, -1, cv2.LINE_AA, shift=2)
                else:
                    pts = np.array([(dpx - r, dpy - r), (dpx + r, dpy - r), (dpx + r, dpy + r), (dpx - r, dpy + r)])
                    cv2.fillPoly(target, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
                if dp_comma:
                    tail = np.array([(dpx + r * 0.2, dpy + r * 0.6), (dpx + r, dpy + r * 0.4),
                                     (dpx - r * 0.6, dpy + r * 2.6)])
                    cv2.fillPoly(target, [np.round(tail * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
            if i in dp_after:
                elements.append((".", (dpx - r, dpy - r, dpx + r, dpy + r * (2.6 if dp_comma else 1.0))))
    ink = lit if _chance(rng, 0.85) else ghost
    text_x1 = ox + digits_w
    if unit:
        font = FONTS[int(rng.integers(len(FONTS)))]
        uh = H * _u(rng, 0.22, 0.45)
        pos = rng.choice(3)
        uy = oy + [uh + H * 0.05, H * 0.5 + uh * 0.5, H][int(pos)]
        tw, _ = _put_text(ink, unit, ox + digits_w + H * _u(rng, 0.08, 0.25), uy, uh, max(1, int(t * 0.35)), font)
        text_x1 = ox + digits_w + H * 0.25 + tw
    if annot_top:
        k = int(rng.integers(1, 4))
        ax = ox + _u(rng, -0.2, 0.5) * H
        for _ in range(k):
            word = str(rng.choice(ANNOTATIONS))
            tgt = lit if _chance(rng, 0.5) else ghost
            tw, _ = _put_text(tgt, word, ax, oy - H * 0.12, H * _u(rng, 0.14, 0.22), 1, cv2.FONT_HERSHEY_SIMPLEX)
            ax += tw + H * _u(rng, 0.3, 1.0)
            if ax > ox + digits_w:
                break
        if _chance(rng, 0.4):  # little triangles marking states
            for _ in range(int(rng.integers(1, 4))):
                tx = ox + _u(rng, 0, digits_w)
                tri = np.array([(tx, oy - H * 0.3), (tx + H * 0.12, oy - H * 0.3), (tx + H * 0.06, oy - H * 0.18)])
                cv2.fillPoly(lit if _chance(rng, 0.5) else ghost, [np.round(tri * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    if annot_left:
        tgt = lit if _chance(rng, 0.6) else ghost
        choice = rng.choice(4)
        lx = ox - H * 0.55
        if choice == 0:
            _put_text(tgt, "->0<-", lx - H * 0.1, oy + H * 0.3, H * 0.14, 1, cv2.FONT_HERSHEY_PLAIN)
        elif choice == 1:  # stability circle / asterisk
            cv2.circle(tgt, (int(lx + H * 0.2), int(oy + H * 0.25)), max(2, int(H * 0.08)), 1.0, -1, cv2.LINE_AA)
        elif choice == 2:  # battery icon
            x0, y0 = int(lx), int(oy + H * 0.7)
            cv2.rectangle(tgt, (x0, y0), (x0 + int(H * 0.35), y0 + int(H * 0.18)), 1.0, max(1, int(t * 0.25)))
            cv2.rectangle(tgt, (x0 + int(H * 0.35), y0 + int(H * 0.05)), (x0 + int(H * 0.4), y0 + int(H * 0.13)), 1.0, -1)
        else:
            _put_text(tgt, str(rng.choice(["NET", "~", "*", "M", "B"])), lx, oy + H * 0.45, H * 0.2, 1, cv2.FONT_HERSHEY_SIMPLEX)

    img = _composite(rng, pal, lit, ghost, (cw, ch), bez, shear, H)
    digits_box = (ox, oy, ox + digits_w, oy + H)
    text_box = (ox, oy, text_x1, oy + H)
    window = (bez, bez, bez + win_w, bez + win_h)
    first_cell = None
    for i, c in enumerate(cells):
        if c != " ":
            first_cell = (ox + xs[i][0], ox + xs[i][0] + xs[i][1] + shear * H)
            break
    assert "".join(e[0] for e in elements) == label, (elements, label)
    return {
        "img": img, "label": label, "digits_box": digits_box, "text_box": text_box, "window": window,
        "first_cell": first_cell, "H": H, "kind": kind, "lit": lit, "dp_mask": dp_mask,
        "elements": elements, "stroke": t, "shear": shear,
    }


def _composite(rng, pal, lit, ghost, size, bez, shear, H):
    cw, ch = size
    kind = pal["kind"]
    bg = np.empty((ch, cw, 3), np.float32)
    bg[...] = pal["bg"].astype(np.float32)
    # background texture inside the window
    if kind == "lcd" and _chance(rng, 0.5):
        bg *= 1 + rng.standard_normal((ch, cw, 1), dtype=np.float32) * np.float32(0.015)
    fg = pal["fg"].astype(np.float32)
    if kind in ("lcd", "backlit") and pal["glow"] == 0.0:
        a = pal["alpha"]
        m = np.clip(lit * a + ghost * pal["ghost"], 0, 1)
        if pal["shadow"] > 0:
            dx, dy = int(round(H * _u(rng, 0.02, 0.09))), int(round(H * _u(rng, 0.02, 0.09)))
            sh = np.roll(np.roll(lit, dy, 0), dx, 1)
            sh = cv2.GaussianBlur(sh, (0, 0), _u(rng, 0.5, 2.0)) * pal["shadow"]
            bg = bg * (1 - sh[..., None] * 0.6)
        img = bg * (1 - m[..., None]) + fg * m[..., None]
    else:
        m = np.clip(lit * pal["alpha"] + ghost * pal["ghost"], 0, 1)
        img = bg * (1 - m[..., None]) + fg * m[..., None]
        if pal["glow"] > 0:
            s = H * _u(rng, 0.035, 0.13)
            bloom = cv2.GaussianBlur(lit, (0, 0), s)
            img = img + bloom[..., None] * fg * pal["glow"]
            if kind == "led" and _chance(rng, 0.6):
                # saturated cores look whitish
                img = img + (lit[..., None] * _u(rng, 0, 120))
        if kind in ("led", "vfd") and _chance(rng, 0.12):
            # multiplexed display seen by a rolling shutter: soft dark bands across it
            yy = np.arange(ch, dtype=np.float32)[:, None, None]
            f = 2 * math.pi * _u(rng, 0.5, 2.5) / ch
            img = img * (1 - _u(rng, 0.15, 0.5) * (0.5 + 0.5 * np.sin(yy * f + _u(rng, 0, 6.3))))
        if kind == "vfd" and _chance(rng, 0.7):
            step = max(2, int(round(H * _u(rng, 0.06, 0.14))))
            mesh = np.ones((ch, cw), np.float32)
            mesh[::step, :] *= 0.55
            mesh[:, ::step] *= 0.55
            img = img * mesh[..., None]
    # window border and bezel
    b = int(bez)
    frame_col = np.array([_u(rng, 10, 80)] * 3) + rng.uniform(-10, 10, 3)
    if _chance(rng, 0.3):
        frame_col = np.array([_u(rng, 120, 220)] * 3) + rng.uniform(-15, 15, 3)
    if b > 0:
        fm = np.ones((ch, cw), np.float32)
        fm[b:ch - b, b:cw - b] = 0
        fm = cv2.GaussianBlur(fm, (0, 0), _u(rng, 0.5, 2.0))
        frame = np.ones_like(img) * frame_col.astype(np.float32)
        if _chance(rng, 0.5):  # bevel highlight
            grad = np.linspace(1.15, 0.85, ch, dtype=np.float32)[:, None, None]
            frame = frame * grad
        img = img * (1 - fm[..., None]) + frame * fm[..., None]
        if _chance(rng, 0.5):  # inner dark edge of the window
            edge = np.zeros((ch, cw), np.float32)
            cv2.rectangle(edge, (b, b), (cw - b, ch - b), 1.0, max(1, int(rng.integers(1, 4))))
            img = img * (1 - 0.5 * edge[..., None])
    return np.clip(img, 0, 255)


# ----------------------------------------------------------------------------- degradations


def _lighting(rng, img):
    h, w = img.shape[:2]
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if _chance(rng, 0.6):  # linear gradient
        ang = _u(rng, 0, 2 * math.pi)
        g = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
        g = 1 + _u(rng, -0.45, 0.45) * (g - g.mean())
        img = img * g[..., None]
    if _chance(rng, 0.35):  # uneven lighting, low frequency
        small = rng.uniform(1 - _u(rng, 0.1, 0.5), 1.0, (3, 4)).astype(np.float32)
        img = img * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    # soft masks are drawn at 1/4 resolution and scaled up (cheap large blurs)
    q = 4
    hs, ws = max(2, h // q), max(2, w // q)

    def up(m):
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]

    if _chance(rng, 0.25):  # cast shadow with soft edge
        m = np.zeros((hs, ws), np.float32)
        pts = np.array([(rng.uniform(-ws, 2 * ws), rng.uniform(-hs, 2 * hs)) for _ in range(4)], np.int32)
        cv2.fillPoly(m, [pts], 1.0)
        m = cv2.GaussianBlur(m, (0, 0), _u(rng, 0.3, 0.1 * ws + 1))
        img = img * (1 - _u(rng, 0.2, 0.6) * up(m))
    if _chance(rng, 0.35):  # glare spots (specular highlights)
        m = np.zeros((hs, ws), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.uniform(0, ws)), int(rng.uniform(0, hs)))
            ax = (max(1, int(rng.uniform(0.03, 0.4) * ws)), max(1, int(rng.uniform(0.05, 0.5) * hs)))
            e = np.zeros((hs, ws), np.float32)
            cv2.ellipse(e, c, ax, _u(rng, 0, 180), 0, 360, 1.0, -1)
            e = cv2.GaussianBlur(e, (0, 0), max(0.7, min(ax) * _u(rng, 0.3, 0.9)))
            m = np.maximum(m, e * _u(rng, 30, 170))
        img = img + up(m)
    if _chance(rng, 0.15):  # glare streak
        m = np.zeros((hs, ws), np.float32)
        x0 = int(rng.uniform(0, ws))
        cv2.line(m, (x0, 0), (x0 + int(rng.uniform(-ws / 2, ws / 2)), hs), 1.0, max(1, int(ws * _u(rng, 0.01, 0.08))))
        m = cv2.GaussianBlur(m, (0, 0), _u(rng, 0.5, 2.5))
        img = img + up(m) * _u(rng, 30, 130)
    return img


def _blur(rng, img, H):
    r = rng.random()
    if r < 0.3:  # defocus: disk kernel
        rad = _u(rng, 0.5, 0.09 * H)
        k = int(2 * math.ceil(rad) + 1)
        ker = np.zeros((k, k), np.float32)
        cv2.circle(ker, (k // 2, k // 2), max(1, int(round(rad))), 1.0, -1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, ker / ker.sum())
    elif r < 0.45:  # motion blur
        L = _u(rng, 2, 0.15 * H)
        ang = _u(rng, 0, 180)
        k = int(math.ceil(L)) | 1
        ker = np.zeros((k, k), np.float32)
        c = k // 2
        dx, dy = math.cos(math.radians(ang)) * L / 2, math.sin(math.radians(ang)) * L / 2
        cv2.line(ker, (int(c - dx), int(c - dy)), (int(c + dx), int(c + dy)), 1.0, 1, cv2.LINE_AA)
        if ker.sum() > 0:
            img = cv2.filter2D(img, -1, ker / ker.sum())
    elif r < 0.75:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, 0.3, 0.05 * H + 0.5))
    return img


def _sensor(rng, img):
    h, w = img.shape[:2]
    if _chance(rng, 0.6):  # colour cast / white balance
        img = img * rng.uniform(0.75, 1.25, 3).astype(np.float32)
    if _chance(rng, 0.4):  # low contrast (haze / poor exposure)
        mean = img.mean()
        k = _u(rng, 0.4, 0.85)
        img = mean + (img - mean) * k + _u(rng, -30, 30)
    img = img.astype(np.float32, copy=False)
    if _chance(rng, 0.4):  # gamma / exposure
        img = np.float32(255.0) * np.power(np.clip(img, 0, 255) / np.float32(255.0), np.float32(_u(rng, 0.6, 1.6)))
    if _chance(rng, 0.08):  # moire: fine interference pattern
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f = _u(rng, 0.3, 1.2)
        ang = _u(rng, 0, math.pi)
        pat = np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * f + _u(rng, 0, 6))
        img = img * (1 + _u(rng, 0.03, 0.12) * pat[..., None])
    if _chance(rng, 0.85):  # sensor noise (shot + read), partly colour
        sigma = _u(rng, 1, 6) if _chance(rng, 0.7) else _u(rng, 6, 12)
        f32 = np.float32
        noise = rng.standard_normal((h, w, 1), dtype=f32) * f32(sigma) + rng.standard_normal((h, w, 3), dtype=f32) * f32(sigma * 0.4)
        shot = rng.standard_normal((h, w, 3), dtype=f32) * np.sqrt(np.clip(img, 0, 255)) * f32(_u(rng, 0, 0.6))
        img = img + noise + shot
    img = np.clip(img, 0, 255).astype(np.uint8)
    if _chance(rng, 0.75):
        q = int(rng.integers(15, 96))
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)


def _homography(rng, box, H):
    """Random perspective + rotation of the display around the text box (x0, y0, x1, y1):
    corners move up to +-0.3 H sideways and +-0.16 H up/down (a phone held at an angle,
    keystone of up to ~30 % on a short display) in 60 %, rotation +-5 deg in 60 %."""
    x0, y0, x1, y1 = box
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    dst = src.copy()
    if _chance(rng, 0.6):
        k = _u(rng, 0.2, 1.0)
        dst[:, 0] += rng.uniform(-0.3, 0.3, 4).astype(np.float32) * H * k
        dst[:, 1] += rng.uniform(-0.16, 0.16, 4).astype(np.float32) * H * k
    if _chance(rng, 0.6):
        a = math.radians(_u(rng, -5, 5))
        c = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
        R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
        dst = (dst - c) @ R.T + c
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def _apply(M, pts):
    pts = np.asarray(pts, np.float32).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, M).reshape(-1, 2)


def _box_pts(b):
    x0, y0, x1, y1 = b
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _warp(img, M, size, scale, border):
    """warpPerspective with an anti-alias pre-blur when the image is shrunk."""
    if scale < 0.7:
        img = cv2.GaussianBlur(img, (0, 0), 0.45 / scale)
    return cv2.warpPerspective(img, M, size, flags=cv2.INTER_LINEAR, borderMode=border)


def legibility(gray, lit, dp, elements, M, stroke_px):
    """Smallest contrast-to-noise ratio d' over the label's characters in the final grey crop:
    |mean(lit) - mean(background)| / (std(background) + 1) inside each character's box after
    a light smoothing (a reader integrates over a stroke). Background includes unlit ghost
    segments, glare and shadow edges, so a digit washed out by glare or lost in noise scores
    low. Returns (min d', per-character list)."""
    g = cv2.GaussianBlur(gray, (0, 0), max(0.5, 0.3 * stroke_px))
    h, w = g.shape
    out = []
    for ch, box in elements:
        q = _apply(M, _box_pts(box))
        x0, y0 = np.floor(q.min(0)).astype(int) - 1
        x1, y1 = np.ceil(q.max(0)).astype(int) + 2
        if ch == ".":  # include the surroundings of the small point
            pad = int(math.ceil(stroke_px))
            x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            out.append(0.0)
            continue
        m = (dp if ch == "." else lit)[y0:y1, x0:x1]
        allm = lit[y0:y1, x0:x1]
        gg = g[y0:y1, x0:x1]
        mx = float(m.max()) if m.size else 0.0
        on = m >= max(0.25, 0.5 * mx)
        off = allm < 0.05
        if mx < 0.25 or on.sum() < 1 or off.sum() < 3:
            out.append(0.0)
            continue
        c = abs(float(gg[on].mean()) - float(gg[off].mean()))
        v = c / (float(gg[off].std()) + 1.0)
        out.append(v / POINT_FACTOR if ch == "." else v)
    return (min(out) if out else 99.0), out


# d' below this is treated as illegible (see README): the sample is drawn again.
MIN_LEGIBILITY = 1.0
# a decimal point must stand out more clearly (d' >= 1.25): a reader knows where digits are,
# but a faint dot in the gap is easy to miss or to imagine
POINT_FACTOR = 1.25


def make_crop(rng, return_info=False):
    """One training/evaluation crop: (RGB uint8 image, label). Crops whose label a person
    could not read (legibility d' < MIN_LEGIBILITY: digit or point washed out by glare, lost
    in noise, blur or contrast) are drawn again from the same generator (up to 6 times)."""
    for _ in range(6):
        res = _make_crop_once(rng)
        if res[2] >= MIN_LEGIBILITY:
            break
    return res if return_info else res[:2]


def _make_crop_once(rng):
    r = rng.random()
    if r < 0.04:
        return make_negative(rng), "", 99.0
    # final digit height in the crop: low resolution in 80 % (13-56 px), sharp in 20 %
    digit_px = _u(rng, 13, 56) if _chance(rng, 0.8) else _u(rng, 56, 110)
    d = render_display(rng, H=float(np.clip(1.25 * digit_px, 20, 44)) * _u(rng, 0.9, 1.1))
    img, lit, dpm = d["img"].astype(np.float32), d["lit"], d["dp_mask"]
    H = d["H"]
    tb = d["text_box"] if _chance(rng, 0.75) else d["digits_box"]
    # perspective/rotation of the display, then an axis-aligned crop around the warped
    # digits: margins from tight to loose (loose includes bezel and annotations)
    P = _homography(rng, tb, H)
    q = _apply(P, _box_pts(tb))
    x0, y0 = q.min(0)
    x1, y1 = q.max(0)
    ml = H * (_u(rng, 0.03, 0.4) if _chance(rng, 0.7) else _u(rng, 0.4, 1.6))
    mr = H * (_u(rng, 0.03, 0.4) if _chance(rng, 0.7) else _u(rng, 0.4, 1.4))
    mt = H * (_u(rng, 0.03, 0.3) if _chance(rng, 0.7) else _u(rng, 0.3, 1.0))
    mb = H * (_u(rng, 0.03, 0.3) if _chance(rng, 0.7) else _u(rng, 0.3, 0.9))
    bx0, by0, bx1, by1 = x0 - ml, y0 - mt, x1 + mr, y1 + mb
    if d["label"] and d["label"][0] != "-" and _chance(rng, 0.07):
        # partly cut leading digit: the crop edge cuts 15-60 % of a stroke into the leftmost
        # lit pixels of the first digit (it stays readable, and labelled)
        ex0, ey0, ex1, ey1 = [int(v) for v in d["elements"][0][1]]
        sub = lit[max(0, ey0):ey1 + 1, max(0, ex0):ex1 + 2]
        ys, xs = np.nonzero(sub > 0.5)
        if len(xs):
            pts = np.stack([xs + max(0, ex0), ys + max(0, ey0)], 1)[:: max(1, len(xs) // 200)]
            bx0 = float(_apply(P, pts)[:, 0].min()) + d["stroke"] * _u(rng, 0.15, 0.6)
    # the canvas must cover the whole crop (no mirrored digits from a reflected border):
    # extend it with its own edge colour (the scale body around the bezel)
    pre = _apply(np.linalg.inv(P), _box_pts((bx0, by0, bx1, by1)))
    ch, cw = img.shape[:2]
    pl = int(max(0, math.ceil(-pre[:, 0].min()) + 2))
    pt = int(max(0, math.ceil(-pre[:, 1].min()) + 2))
    pr = int(max(0, math.ceil(pre[:, 0].max() - cw) + 2))
    pb = int(max(0, math.ceil(pre[:, 1].max() - ch) + 2))
    if pl or pt or pr or pb:
        img = cv2.copyMakeBorder(img, pt, pb, pl, pr, cv2.BORDER_REPLICATE)
        lit = cv2.copyMakeBorder(lit, pt, pb, pl, pr, cv2.BORDER_CONSTANT, value=0)
        dpm = cv2.copyMakeBorder(dpm, pt, pb, pl, pr, cv2.BORDER_CONSTANT, value=0)
    Tpad = np.array([[1, 0, -pl], [0, 1, -pt], [0, 0, 1]], np.float64)
    img = _lighting(rng, img)
    img = _blur(rng, img, H)
    s = digit_px / H
    out_h = int(max(8, round((by1 - by0) * s)))
    out_w = int(max(4, round((bx1 - bx0) * s)))
    T = np.array([[s, 0, -bx0 * s], [0, s, -by0 * s], [0, 0, 1]], np.float64)
    M = T @ P @ Tpad
    crop = _warp(img, M, (out_w, out_h), s, cv2.BORDER_REPLICATE)
    out = _sensor(rng, crop)
    leg = 99.0
    if d["elements"]:
        lit = _warp(lit, M, (out_w, out_h), s, cv2.BORDER_CONSTANT)
        dp = _warp(dpm, M, (out_w, out_h), s, cv2.BORDER_CONSTANT)
        Mc = T @ P  # element boxes are in unpadded canvas coordinates
        leg, _ = legibility(to_gray(out), lit, dp, d["elements"], Mc, d["stroke"] * s)
    if _chance(rng, 0.2):  # phone digital zoom: re-upscale the low resolution crop
        f = _u(rng, 1.3, 3.0)
        out = cv2.resize(out, (int(out.shape[1] * f), int(out.shape[0] * f)), interpolation=cv2.INTER_LINEAR)
    return out, d["label"], leg


def make_negative(rng):
    """Crops without a seven-segment reading: printed labels, keypads, plain bezel, blank display."""
    h = int(rng.integers(20, 80))
    w = int(h * _u(rng, 1.5, 7))
    bgc = rng.uniform(0, 255, 3)
    img = np.ones((h, w, 3), np.float32) * bgc.astype(np.float32)
    r = rng.random()
    ink = np.clip(255 - bgc + rng.uniform(-60, 60, 3), 0, 255) if _chance(rng, 0.8) else rng.uniform(0, 255, 3)
    if r < 0.6:  # printed text with digits (capacity labels, serial numbers)
        txt = str(rng.choice(["Max ", "Min ", "d=", "e=", "S/N ", "", "No.", "Cap "]))
        txt += "".join(str(int(v)) for v in rng.integers(0, 10, int(rng.integers(1, 7))))
        if _chance(rng, 0.5):
            txt += str(rng.choice(["g", "kg", " ct", ".01g", "0g", ""]))
        m = np.zeros((h, w), np.float32)
        _put_text(m, txt, h * 0.1, h * 0.75, h * _u(rng, 0.35, 0.6), max(1, int(h / 25)), FONTS[int(rng.integers(len(FONTS)))])
        img = img * (1 - m[..., None]) + ink.astype(np.float32) * m[..., None]
    elif r < 0.8:  # keypad buttons
        for i in range(int(rng.integers(1, 5))):
            x0 = int(i * w / 4 + rng.uniform(0, w / 10))
            cv2.rectangle(img, (x0, int(h * 0.15)), (x0 + int(w / 6), int(h * 0.85)), ink.tolist(), -1)
            _put_text(img, str(rng.choice(["ON", "TARE", "MODE", "0", "T", "PRINT", "CAL"])), x0 + 2, int(h * 0.65), h * 0.25, 1, cv2.FONT_HERSHEY_SIMPLEX, value=tuple(bgc.tolist()))
    # else: plain textured surface
    img = _lighting(rng, img)
    img = _blur(rng, img, h)
    return _sensor(rng, img)


# ----------------------------------------------------------------------------- scenes


def make_scene(rng, size=None):
    """A 'phone photo' of a scale: returns (RGB uint8 image, label, display box x,y,w,h)."""
    if size is None:
        size = [(1920, 1080), (1080, 1920), (1440, 1080), (1600, 1200)][int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))]
    W, Hh = size
    # background: table / wall with gradients and blobs
    base = rng.uniform(30, 220, 3).astype(np.float32)
    img = np.ones((Hh, W, 3), np.float32) * base
    small = rng.uniform(0.6, 1.3, (4, 6, 3)).astype(np.float32)
    img *= cv2.resize(small, (W, Hh), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 8))):  # clutter
        c = rng.uniform(0, 255, 3).tolist()
        x, y = int(rng.uniform(0, W)), int(rng.uniform(0, Hh))
        if _chance(rng, 0.5):
            cv2.rectangle(img, (x, y), (x + int(rng.uniform(30, W / 3)), y + int(rng.uniform(30, Hh / 3))), c, -1)
        else:
            cv2.circle(img, (x, y), int(rng.uniform(20, W / 6)), c, -1)
    # scale body
    bw = int(W * _u(rng, 0.45, 0.9))
    bh = int(bw * _u(rng, 0.5, 1.1))
    bh = min(bh, int(Hh * 0.92))
    bx = int(rng.uniform(0, W - bw))
    by = int(rng.uniform(0, Hh - bh))
    body_col = rng.choice([rng.uniform(200, 245, 3), rng.uniform(20, 70, 3), rng.uniform(110, 180, 3)])
    cv2.rectangle(img, (bx, by), (bx + bw, by + bh), body_col.tolist(), -1)
    # display
    d = render_display(rng)
    dimg = d["img"]
    wx0, wy0, wx1, wy1 = d["window"]
    bez = wx0
    dw_target = bw * _u(rng, 0.3, 0.7)
    s = dw_target / dimg.shape[1]
    # keep digit height >= ~20 px in the photo
    s = max(s, 22.0 / d["H"])
    dimg_s = cv2.resize(dimg, (max(4, int(dimg.shape[1] * s)), max(4, int(dimg.shape[0] * s))), interpolation=cv2.INTER_AREA)
    dh, dw = dimg_s.shape[:2]
    if dw >= W - 4 or dh >= Hh - 4:
        return make_scene(rng, size)
    px = int(np.clip(bx + (bw - dw) * _u(rng, 0.1, 0.9), 0, W - dw))
    py = int(np.clip(by + (bh - dh) * _u(rng, 0.05, 0.4), 0, Hh - dh))
    img[py:py + dh, px:px + dw] = dimg_s
    tx0, ty0, tx1, ty1 = d["text_box"]
    gt = (px + tx0 * s, py + ty0 * s, (tx1 - tx0) * s, (ty1 - ty0) * s)
    # keypad and printed label below the display
    ky = py + dh + int(bh * 0.05)
    for i in range(int(rng.integers(2, 7))):
        kx = bx + int(bw * 0.05) + i * int(bw * 0.15)
        if ky + int(bh * 0.1) < Hh and kx + int(bw * 0.1) < W:
            kc = rng.uniform(0, 255, 3).tolist()
            cv2.rectangle(img, (kx, ky), (kx + int(bw * 0.1), ky + int(bh * 0.08)), kc, -1)
            _put_text(img, str(rng.choice(["ON", "TARE", "MODE", "PRINT", "CAL", "0/T", "UNIT"])), kx + 3, ky + int(bh * 0.06), bh * 0.025, 2, cv2.FONT_HERSHEY_SIMPLEX, value=(250, 250, 250))
    if _chance(rng, 0.8):
        lx = int(bx + bw * _u(rng, 0.0, 0.6))
        ly = int(min(Hh - 30, by + bh * _u(rng, 0.75, 0.95)))
        cv2.rectangle(img, (lx, ly - int(bh * 0.06)), (lx + int(bw * 0.35), ly + int(bh * 0.02)), (235, 235, 230), -1)
        _put_text(img, "Max %dg d=0.%02dg" % (int(rng.integers(100, 6000)), int(rng.integers(1, 10))), lx + 5, ly, bh * 0.03, 2, cv2.FONT_HERSHEY_SIMPLEX, value=(20, 20, 20))
    if _chance(rng, 0.6):
        _put_text(img, str(rng.choice(["PRECISA", "ACCULAB", "KERNEL", "OHMEX", "SARTO", "ADAMS"])), bx + bw * 0.05, by + bh * 0.08 + 20, bh * 0.04, 3, cv2.FONT_HERSHEY_DUPLEX, value=tuple(rng.uniform(0, 255, 3).tolist()))
    img = _lighting(rng, img)
    img = cv2.GaussianBlur(img, (0, 0), _u(rng, 0.3, 1.5))
    # mild perspective of the whole photo
    src = np.array([[0, 0], [W, 0], [W, Hh], [0, Hh]], np.float32)
    dst = src + rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * np.array([W, Hh], np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, M, (W, Hh), borderMode=cv2.BORDER_REFLECT)
    corners = np.array([[gt[0], gt[1]], [gt[0] + gt[2], gt[1]], [gt[0] + gt[2], gt[1] + gt[3]], [gt[0], gt[1] + gt[3]]], np.float32)
    wc = cv2.perspectiveTransform(corners[None], M)[0]
    x0, y0 = wc.min(0)
    x1, y1 = wc.max(0)
    out = _sensor(rng, img)
    return out, d["label"], (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


# ----------------------------------------------------------------------------- model input


def to_gray(img):
    """Luma as in the Rust reader: (299 R + 587 G + 114 B) / 1000."""
    f = img.astype(np.float32)
    return (f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114)


def preprocess(img, interp=cv2.INTER_AREA):
    """RGB crop -> float32 (INPUT_H, INPUT_W) model input; same recipe as the Rust reader:
    grey, resize to height 32 keeping aspect (width clamped to INPUT_W), standardise with
    mean/std (std floored at 8), clip to [-3, 3], pad right with 0."""
    g = to_gray(img)
    h, w = g.shape
    nw = int(round(w * INPUT_H / max(h, 1)))
    nw = max(4, min(INPUT_W, nw))
    r = cv2.resize(g, (nw, INPUT_H), interpolation=interp)
    m = float(r.mean())
    sd = max(float(r.std()), 8.0)
    x = np.clip((r - m) / sd, -3, 3)
    out = np.zeros((INPUT_H, INPUT_W), np.float32)
    out[:, :nw] = x
    return out
