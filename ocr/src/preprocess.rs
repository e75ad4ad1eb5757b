//! Image pre-processing in plain Rust: grey conversion, area/bilinear resampling and the
//! model-input recipe shared with the Python training pipeline (`training/synth.py::preprocess`).

use image::DynamicImage;

/// Model input height in pixels.
pub const INPUT_H: usize = 32;
/// Model input width in pixels (content is left-aligned, the rest is zero padding).
pub const INPUT_W: usize = 256;

/// A single-channel floating point image (luma 0..255), row-major.
#[derive(Debug, Clone)]
pub struct Gray {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Gray {
    /// Luma as in training: (299 R + 587 G + 114 B) / 1000.
    pub fn from_image(image: &DynamicImage) -> Gray {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut data = Vec::with_capacity(w * h);
        match image {
            DynamicImage::ImageLuma8(g) => data.extend(g.as_raw().iter().map(|&v| f32::from(v))),
            DynamicImage::ImageRgb8(rgb) => data.extend(rgb.as_raw().chunks_exact(3).map(luma)),
            other => {
                let rgb = other.to_rgb8();
                data.extend(rgb.as_raw().chunks_exact(3).map(luma));
            }
        }
        Gray { w, h, data }
    }

    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    /// Copies the rectangle (x, y, w, h), clamped to the image.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Gray {
        let x0 = x.min(self.w);
        let y0 = y.min(self.h);
        let x1 = (x + w).min(self.w);
        let y1 = (y + h).min(self.h);
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut data = Vec::with_capacity(cw * ch);
        for row in y0..y1 {
            data.extend_from_slice(&self.data[row * self.w + x0..row * self.w + x1]);
        }
        Gray { w: cw, h: ch, data }
    }

    /// Resamples to (nw, nh): area averaging when shrinking, bilinear when enlarging
    /// (the behaviour of OpenCV's INTER_AREA used in training).
    pub fn resize(&self, nw: usize, nh: usize) -> Gray {
        if self.w == 0 || self.h == 0 || nw == 0 || nh == 0 {
            return Gray {
                w: nw,
                h: nh,
                data: vec![0.0; nw * nh],
            };
        }
        let wx = weights(self.w, nw);
        let wy = weights(self.h, nh);
        // horizontal pass: h x nw
        let mut tmp = vec![0.0f32; self.h * nw];
        for y in 0..self.h {
            let row = &self.data[y * self.w..(y + 1) * self.w];
            let out = &mut tmp[y * nw..(y + 1) * nw];
            for (o, taps) in out.iter_mut().zip(&wx) {
                *o = taps.iter().map(|&(i, k)| row[i] * k).sum();
            }
        }
        // vertical pass
        let mut data = vec![0.0f32; nw * nh];
        for (oy, taps) in wy.iter().enumerate() {
            let out = &mut data[oy * nw..(oy + 1) * nw];
            for &(iy, k) in taps {
                let src = &tmp[iy * nw..(iy + 1) * nw];
                for (o, s) in out.iter_mut().zip(src) {
                    *o += s * k;
                }
            }
        }
        Gray { w: nw, h: nh, data }
    }
}

#[inline]
fn luma(p: &[u8]) -> f32 {
    // multiplication by 1/1000 instead of a division: the same value to within one ulp
    (f32::from(p[0]) * 299.0 + f32::from(p[1]) * 587.0 + f32::from(p[2]) * 114.0) * 0.001
}

/// Resampling taps (source index, weight) for each output sample.
fn weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    let mut all = Vec::with_capacity(n_out);
    for o in 0..n_out {
        let mut taps = Vec::new();
        if scale >= 1.0 {
            // area: source interval [o*scale, (o+1)*scale)
            let a = o as f64 * scale;
            let b = ((o + 1) as f64 * scale).min(n_in as f64);
            let mut i = a.floor() as usize;
            while (i as f64) < b && i < n_in {
                let lo = a.max(i as f64);
                let hi = b.min((i + 1) as f64);
                if hi > lo {
                    taps.push((i, ((hi - lo) / (b - a)) as f32));
                }
                i += 1;
            }
        } else {
            // bilinear with pixel centres aligned
            let c = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (c.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            let f = (c - i0 as f64) as f32;
            if i0 == i1 {
                taps.push((i0, 1.0));
            } else {
                taps.push((i0, 1.0 - f));
                taps.push((i1, f));
            }
        }
        all.push(taps);
    }
    all
}

/// Builds the standardised model input for a grey crop: height 32 keeping the aspect ratio
/// (width clamped to 4..=256), `(v - mean) / max(std, 8)` clipped to [-3, 3], right-padded
/// with 0. Returns the row-major 32 x 256 buffer and the content width.
pub fn model_input(crop: &Gray) -> (Vec<f32>, usize) {
    model_input_stretched(crop, 1.0)
}

/// As [`model_input`] with the width multiplied by `stretch` (test-time variants).
pub fn model_input_stretched(crop: &Gray, stretch: f64) -> (Vec<f32>, usize) {
    let (data, nw) = standardised(crop, stretch);
    let mut out = vec![0.0f32; INPUT_H * INPUT_W];
    if nw > 0 {
        for y in 0..INPUT_H {
            out[y * INPUT_W..y * INPUT_W + nw].copy_from_slice(&data[y * nw..(y + 1) * nw]);
        }
    }
    (out, nw)
}

/// Width at which the network runs for a content width: room for a little zero padding
/// (as in the training batches), rounded up to a multiple of 32, at least 64, at most 256.
pub fn bucket_width(content: usize) -> usize {
    (content + 12)
        .div_ceil(32)
        .saturating_mul(32)
        .clamp(64, INPUT_W)
}

/// The network input for a crop: row-major `32 x width`, content left-aligned, zero padded,
/// where `width` is the smallest of `widths` (the network widths available, ascending) that
/// holds [`bucket_width`] of the content, else the largest. Returns (data, width, content
/// width); the content is cut at `width` if it is wider (never with the 256 plan).
pub fn network_input(crop: &Gray, stretch: f64, widths: &[usize]) -> (Vec<f32>, usize, usize) {
    let (data, nw) = standardised(crop, stretch);
    let want = bucket_width(nw);
    let width = widths
        .iter()
        .copied()
        .find(|&w| w >= want)
        .or_else(|| widths.last().copied())
        .unwrap_or(INPUT_W);
    let mut out = vec![0.0f32; INPUT_H * width];
    let keep = nw.min(width);
    if keep > 0 {
        for y in 0..INPUT_H {
            out[y * width..y * width + keep].copy_from_slice(&data[y * nw..y * nw + keep]);
        }
    }
    (out, width, nw)
}

/// Resized (height 32, width `nw`) and standardised crop, row-major `32 x nw`.
fn standardised(crop: &Gray, stretch: f64) -> (Vec<f32>, usize) {
    if crop.w == 0 || crop.h == 0 {
        return (Vec::new(), 0);
    }
    let nw = ((crop.w as f64 * stretch * INPUT_H as f64 / crop.h as f64).round() as usize)
        .clamp(4, INPUT_W);
    let r = crop.resize(nw, INPUT_H);
    let n = r.data.len() as f64;
    let mean = r.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = r
        .data
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt().max(8.0);
    let out = r
        .data
        .iter()
        .map(|&v| ((f64::from(v) - mean) / sd).clamp(-3.0, 3.0) as f32)
        .collect();
    (out, nw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Gray {
        Gray {
            w,
            h,
            data: (0..w * h).map(|i| (i % w) as f32).collect(),
        }
    }

    #[test]
    fn area_downscale_averages() {
        let g = Gray {
            w: 4,
            h: 1,
            data: vec![0.0, 2.0, 4.0, 6.0],
        };
        let r = g.resize(2, 1);
        assert_eq!(r.data, vec![1.0, 5.0]);
    }

    #[test]
    fn upscale_keeps_constant() {
        let g = Gray {
            w: 3,
            h: 2,
            data: vec![7.0; 6],
        };
        let r = g.resize(10, 9);
        assert!(r.data.iter().all(|&v| (v - 7.0).abs() < 1e-4));
    }

    #[test]
    fn model_input_shape_and_padding() {
        let g = ramp(64, 16);
        let (x, nw) = model_input(&g);
        assert_eq!(x.len(), INPUT_H * INPUT_W);
        assert_eq!(nw, 128);
        assert!(x[INPUT_W - 1].abs() < 1e-6, "padding is zero");
        let mean: f32 = (0..nw).map(|i| x[i]).sum::<f32>() / nw as f32;
        assert!(mean.abs() < 0.05);
    }

    #[test]
    fn bucket_widths() {
        assert_eq!(bucket_width(0), 64);
        assert_eq!(bucket_width(52), 64);
        assert_eq!(bucket_width(53), 96);
        assert_eq!(bucket_width(120), 160);
        assert_eq!(bucket_width(256), 256);
        let g = ramp(64, 16);
        let all: Vec<usize> = (64..=INPUT_W).step_by(32).collect();
        let (x, w, nw) = network_input(&g, 1.0, &all);
        assert_eq!((w, nw, x.len()), (160, 128, 32 * 160));
        let (full, _) = model_input(&g);
        assert_eq!(&x[..nw], &full[..nw]);
        assert_eq!(&x[w..w + nw], &full[INPUT_W..INPUT_W + nw]);
    }

    #[test]
    fn crop_clamps() {
        let g = ramp(10, 10);
        let c = g.crop(8, 8, 10, 10);
        assert_eq!((c.w, c.h), (2, 2));
        let e = g.crop(20, 20, 5, 5);
        assert_eq!((e.w, e.h), (0, 0));
        let (x, nw) = model_input(&e);
        assert_eq!(nw, 0);
        assert!(x.iter().all(|&v| v == 0.0));
    }
}
