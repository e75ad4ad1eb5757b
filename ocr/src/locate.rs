//! Display localisation in full photos (operator phones): classical candidate regions.
//!
//! The photo is shrunk to at most 640 px on its long side; strong grey-level gradients are
//! marked; their local density is measured with box filters at three window sizes (digits of
//! different sizes); dense connected regions become candidate boxes, neighbouring boxes on
//! one text line are merged, and the best-scoring few are returned in full-resolution
//! coordinates. A dense region is often a whole display window, in which the digits are
//! small; the text line inside the best few (found on horizontal gradients, which the
//! vertical segment strokes make and the window's horizontal edges do not) is proposed as
//! well. The reader runs the recogniser on each candidate and keeps the best reading, so a
//! candidate only has to contain the digits with a margin, not be exact.

use crate::preprocess::Gray;

/// A candidate rectangle in image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

impl Rect {
    fn iou(&self, o: &Rect) -> f32 {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = (self.x + self.w).min(o.x + o.w);
        let y1 = (self.y + self.h).min(o.y + o.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.w * self.h + o.w * o.h - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// Long side of the working image.
const WORK: usize = 640;
/// (window width, window height) of the density filters at working scale: about twice as
/// wide as high, so that the gaps between the digits of one line are bridged, from small
/// digits (a few pixels at working scale) to a display filling much of the photo.
const WINDOWS: [(usize, usize); 4] = [(9, 5), (17, 9), (31, 15), (55, 27)];

/// Candidate display regions, best first, at most `max` of them.
pub fn candidates(g: &Gray, max: usize) -> Vec<Rect> {
    let (small, s) = working_image(g);
    candidates_in(&small, s, max)
}

/// The image scaled down (area averaging) so that its long side is at most 640 px, and the
/// scale factor applied (1 if it was small enough already).
pub fn working_image(g: &Gray) -> (Gray, f32) {
    let s = (WORK as f32 / g.w.max(g.h).max(1) as f32).min(1.0);
    if s >= 1.0 {
        return (g.clone(), 1.0);
    }
    let sw = ((g.w as f32 * s).round() as usize).max(8);
    let sh = ((g.h as f32 * s).round() as usize).max(8);
    (g.resize(sw, sh), s)
}

/// As [`candidates`] on the working image `small` made by [`working_image`] with scale
/// `s`; the boxes are returned in the coordinates of the original image.
pub fn candidates_in(small: &Gray, s: f32, max: usize) -> Vec<Rect> {
    if small.w < 8 || small.h < 8 || s <= 0.0 {
        return Vec::new();
    }
    let (sw, sh) = (small.w, small.h);
    let edges = edge_map(small);
    let integral = integral(&edges, sw, sh);
    let mut boxes: Vec<Rect> = Vec::new();
    for &(ww, wh) in &WINDOWS {
        let dense = density_mask(&integral, sw, sh, ww, wh, 0.22);
        for mut b in components(&dense, sw, sh) {
            // edge density inside the box as the score
            let (x0, y0) = (b.x as usize, b.y as usize);
            let (x1, y1) = ((b.x + b.w) as usize, (b.y + b.h) as usize);
            let sum = box_sum(&integral, sw, x0, y0, x1, y1);
            let area = ((x1 - x0) * (y1 - y0)).max(1) as f32;
            b.score = (sum / area) * (b.h.min(80.0)).sqrt();
            boxes.push(b);
        }
    }
    boxes.retain(|b| plausible_box(b, sw as f32, sh as f32));
    let merged = merge_lines(&boxes);
    boxes.extend(merged);
    boxes.retain(|b| plausible_box(b, sw as f32, sh as f32));
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Rect> = Vec::new();
    for b in boxes {
        if keep.iter().all(|k| k.iou(&b) < 0.6) {
            keep.push(b);
            if keep.len() == max {
                break;
            }
        }
    }
    // A dense region is often the whole display window (digits, annotations, bezel edges),
    // in which the digits are too small once the region is scaled to the network's 32 px.
    // The text line inside it, tightened, is proposed too (after the regions themselves).
    let tight: Vec<Rect> = keep
        .iter()
        .take(TIGHTENED)
        .filter_map(|b| tighten(small, b))
        .collect();
    for t in tight {
        if keep.iter().all(|k| k.iou(&t) < 0.6) {
            keep.push(t);
        }
    }
    let inv = 1.0 / s;
    keep.into_iter()
        .map(|b| Rect {
            x: b.x * inv,
            y: b.y * inv,
            w: b.w * inv,
            h: b.h * inv,
            score: b.score,
        })
        .collect()
}

/// How many of the best candidates get a tightened text-line box as well.
const TIGHTENED: usize = 4;

/// The strongest text line inside `b`, found on horizontal gradients only (the vertical
/// strokes of the digits; the horizontal edges of a display window or bezel, which would
/// otherwise be the densest rows, do not count): the run of rows around the densest one
/// whose count stays above a third of it, then the columns of that band that hold such
/// edges, plus a margin as in training (0.15 line heights above and below, 0.3 beside).
/// `None` when that is not clearly smaller than `b` (nothing to gain) or too small to read.
fn tighten(g: &Gray, b: &Rect) -> Option<Rect> {
    let (w, h) = (g.w, g.h);
    let x0 = (b.x.max(1.0) as usize).min(w - 1);
    let y0 = (b.y.max(0.0) as usize).min(h);
    let x1 = ((b.x + b.w) as usize).min(w - 1);
    let y1 = ((b.y + b.h) as usize).min(h);
    if x1 <= x0 + 4 || y1 <= y0 + 4 {
        return None;
    }
    let dx = |x: usize, y: usize| (g.at(x + 1, y) - g.at(x - 1, y)).abs();
    let mut mags: Vec<f32> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| dx(x, y))
        .collect();
    let k = mags.len() * 85 / 100;
    let t = *mags.select_nth_unstable_by(k, f32::total_cmp).1;
    let t = t.max(10.0);
    let edges: Vec<u8> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| u8::from(dx(x, y) > t))
        .collect();
    let bw = x1 - x0;
    let rows: Vec<u32> = (0..y1 - y0)
        .map(|r| {
            edges[r * bw..(r + 1) * bw]
                .iter()
                .map(|&e| u32::from(e))
                .sum()
        })
        .collect();
    // rows smoothed over 3 so that one thin gap between segments does not split a digit
    let sm: Vec<u32> = (0..rows.len())
        .map(|i| {
            let a = i.saturating_sub(1);
            let z = (i + 2).min(rows.len());
            rows[a..z].iter().sum::<u32>() / (z - a) as u32
        })
        .collect();
    let (peak, &top) = sm.iter().enumerate().max_by_key(|&(_, v)| *v)?;
    if top < 3 {
        return None;
    }
    let thr = top / 3;
    let mut ra = peak;
    while ra > 0 && sm[ra - 1] > thr {
        ra -= 1;
    }
    let mut rb = peak + 1;
    while rb < sm.len() && sm[rb] > thr {
        rb += 1;
    }
    let (ty0, ty1) = (y0 + ra, y0 + rb);
    let lh = (ty1 - ty0) as f32;
    if lh < 4.0 {
        return None;
    }
    let cols: Vec<u32> = (0..bw)
        .map(|c| (ra..rb).map(|r| u32::from(edges[r * bw + c])).sum())
        .collect();
    let need = ((lh * 0.08) as u32).max(1);
    let ca = cols.iter().position(|&c| c >= need)?;
    let cb = cols.iter().rposition(|&c| c >= need)? + 1;
    let (tx0, tx1) = ((x0 + ca) as f32, (x0 + cb) as f32);
    let (mx, my) = (0.3 * lh, 0.15 * lh);
    let nx0 = (tx0 - mx).max(0.0);
    let ny0 = (ty0 as f32 - my).max(0.0);
    let nx1 = (tx1 + mx).min(w as f32);
    let ny1 = (ty1 as f32 + my).min(h as f32);
    let t = Rect {
        x: nx0,
        y: ny0,
        w: nx1 - nx0,
        h: ny1 - ny0,
        score: b.score,
    };
    (t.h < 0.8 * b.h && t.w >= 6.0 && t.h >= 5.0).then_some(t)
}

fn plausible_box(b: &Rect, sw: f32, sh: f32) -> bool {
    let aspect = b.w / b.h.max(1.0);
    b.h >= 5.0
        && b.w >= 6.0
        && (0.7..=14.0).contains(&aspect)
        && b.w * b.h < 0.45 * sw * sh
        && b.h < 0.5 * sh
}

/// Binary map of strong gradients: |dx| + |dy| above max(14, 88th percentile).
fn edge_map(g: &Gray) -> Vec<u8> {
    let (w, h) = (g.w, g.h);
    let mut mag = vec![0.0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let dx = (g.at(x + 1, y) - g.at(x - 1, y)).abs();
            let dy = (g.at(x, y + 1) - g.at(x, y - 1)).abs();
            mag[y * w + x] = dx + dy;
        }
    }
    let mut hist = [0u32; 512];
    for &m in &mag {
        hist[(m as usize).min(511)] += 1;
    }
    let target = (mag.len() as f64 * 0.88) as u64;
    let mut acc = 0u64;
    let mut thr = 511usize;
    for (i, &c) in hist.iter().enumerate() {
        acc += u64::from(c);
        if acc >= target {
            thr = i;
            break;
        }
    }
    let t = (thr as f32).max(14.0);
    mag.iter().map(|&m| u8::from(m > t)).collect()
}

fn integral(b: &[u8], w: usize, h: usize) -> Vec<u32> {
    let mut ii = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += u32::from(b[y * w + x]);
            ii[(y + 1) * (w + 1) + x + 1] = ii[y * (w + 1) + x + 1] + row;
        }
    }
    ii
}

fn box_sum(ii: &[u32], w: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> f32 {
    let s = w + 1;
    (ii[y1 * s + x1] + ii[y0 * s + x0]) as f32 - (ii[y0 * s + x1] + ii[y1 * s + x0]) as f32
}

fn density_mask(ii: &[u32], w: usize, h: usize, ww: usize, wh: usize, thr: f32) -> Vec<u8> {
    let mut out = vec![0u8; w * h];
    let (hw, hh) = (ww / 2, wh / 2);
    for y in 0..h {
        let y0 = y.saturating_sub(hh);
        let y1 = (y + hh + 1).min(h);
        for x in 0..w {
            let x0 = x.saturating_sub(hw);
            let x1 = (x + hw + 1).min(w);
            let area = ((x1 - x0) * (y1 - y0)) as f32;
            if box_sum(ii, w, x0, y0, x1, y1) / area > thr {
                out[y * w + x] = 1;
            }
        }
    }
    out
}

/// Bounding boxes of 4-connected regions of `m`.
fn components(m: &[u8], w: usize, h: usize) -> Vec<Rect> {
    let mut label = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if m[start] == 0 || label[start] {
            continue;
        }
        label[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0usize, 0usize);
        while let Some(p) = stack.pop() {
            let (x, y) = (p % w, p / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
            let mut push = |q: usize| {
                if m[q] != 0 && !label[q] {
                    label[q] = true;
                    stack.push(q);
                }
            };
            if x > 0 {
                push(p - 1);
            }
            if x + 1 < w {
                push(p + 1);
            }
            if y > 0 {
                push(p - w);
            }
            if y + 1 < h {
                push(p + w);
            }
        }
        out.push(Rect {
            x: x0 as f32,
            y: y0 as f32,
            w: (x1 - x0 + 1) as f32,
            h: (y1 - y0 + 1) as f32,
            score: 0.0,
        });
    }
    out
}

/// Unions of boxes that sit on one text line (similar height, overlapping rows, small gap),
/// merged transitively: the digits of one display that fell apart into fragments become one
/// box again. Only boxes that grew are returned (the fragments stay candidates too).
fn merge_lines(boxes: &[Rect]) -> Vec<Rect> {
    let same_line = |a: &Rect, b: &Rect| {
        let hr = a.h.max(b.h) / a.h.min(b.h).max(1.0);
        let oy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
        let gap = if b.x > a.x + a.w {
            b.x - (a.x + a.w)
        } else if a.x > b.x + b.w {
            a.x - (b.x + b.w)
        } else {
            0.0
        };
        hr < 1.8 && oy > 0.6 * a.h.min(b.h) && gap < 1.2 * a.h.max(b.h)
    };
    let mut out: Vec<Rect> = Vec::new();
    for (i, a) in boxes.iter().enumerate() {
        let mut u = *a;
        let mut grown = false;
        // grow until no other box joins (at most a few rounds: boxes are few)
        for _ in 0..8 {
            let mut changed = false;
            for (j, b) in boxes.iter().enumerate() {
                if i == j || contains(&u, b) || !same_line(&u, b) {
                    continue;
                }
                let x0 = u.x.min(b.x);
                let y0 = u.y.min(b.y);
                let x1 = (u.x + u.w).max(b.x + b.w);
                let y1 = (u.y + u.h).max(b.y + b.h);
                u = Rect {
                    x: x0,
                    y: y0,
                    w: x1 - x0,
                    h: y1 - y0,
                    score: u.score.max(b.score),
                };
                changed = true;
                grown = true;
            }
            if !changed {
                break;
            }
        }
        if grown && !out.iter().any(|o| o.iou(&u) > 0.95) {
            out.push(u);
        }
    }
    out
}

fn contains(outer: &Rect, inner: &Rect) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && inner.x + inner.w <= outer.x + outer.w
        && inner.y + inner.h <= outer.y + outer.h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_bright_block_of_strokes() {
        // dark image with a "display" of vertical strokes at (200..360, 100..140)
        let (w, h) = (640, 360);
        let mut data = vec![20.0f32; w * h];
        for y in 100..140 {
            for x in 200..360 {
                if (x / 4) % 3 == 0 || y == 100 || y == 120 || y == 139 {
                    data[y * w + x] = 220.0;
                }
            }
        }
        let g = Gray { w, h, data };
        let c = candidates(&g, 5);
        assert!(!c.is_empty());
        let best = c[0];
        assert!(best.x < 215.0 && best.x + best.w > 345.0, "{best:?}");
        assert!(best.y < 105.0 && best.y + best.h > 135.0, "{best:?}");
    }

    #[test]
    fn tightens_a_display_window_to_its_digit_line() {
        // a bright window frame (strong horizontal edges) around a line of vertical strokes
        let (w, h) = (640, 360);
        let mut data = vec![30.0f32; w * h];
        for y in 80..240 {
            for x in 150..450 {
                let frame = !(84..236).contains(&y) || !(154..446).contains(&x);
                let stroke = (140..180).contains(&y) && (200..400).contains(&x) && (x / 5) % 4 == 0;
                if frame || stroke {
                    data[y * w + x] = 230.0;
                }
            }
        }
        let g = Gray { w, h, data };
        let window = Rect {
            x: 150.0,
            y: 80.0,
            w: 300.0,
            h: 160.0,
            score: 1.0,
        };
        let Some(t) = tighten(&g, &window) else {
            panic!("no text line found")
        };
        assert!(t.y <= 140.0 && t.y + t.h >= 180.0, "{t:?}");
        assert!(t.h < 0.5 * window.h, "{t:?}");
        assert!(t.x <= 200.0 && t.x + t.w >= 396.0, "{t:?}");
        // a flat region has no text line
        let flat = Gray {
            w,
            h,
            data: vec![90.0; w * h],
        };
        assert_eq!(tighten(&flat, &window), None);
    }

    #[test]
    fn tiny_or_flat_images_give_nothing() {
        assert!(candidates(
            &Gray {
                w: 4,
                h: 4,
                data: vec![0.0; 16]
            },
            5
        )
        .is_empty());
        assert!(candidates(
            &Gray {
                w: 100,
                h: 100,
                data: vec![50.0; 10000]
            },
            5
        )
        .is_empty());
    }
}
