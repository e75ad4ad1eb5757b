//! Cuts a scale's byte stream into frames.
//!
//! Line protocols end frames with LF (CR before it is dropped). Bytes that cannot start a
//! line (noise, an A&D ACK, a wrong baud rate's high bytes) are skipped up to the first
//! printable character, so garbage on the line costs at most the frame it touches. Toledo
//! continuous output is fixed-size binary: STX, 16 bytes ending in CR, checksum; a
//! frame without its CR resynchronises on the next STX. Frames longer than
//! [`MAX_FRAME`] are discarded whole.

/// Longest line kept; anything longer is garbage.
pub const MAX_FRAME: usize = 128;
const STX: u8 = 0x02;
const TOLEDO_LEN: usize = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lines,
    Toledo,
}

/// Stream-to-frames state. See the module docs.
#[derive(Debug, Clone)]
pub struct Framer {
    kind: Kind,
    buf: Vec<u8>,
    overflow: bool,
}

impl Framer {
    pub fn lines() -> Framer {
        Framer {
            kind: Kind::Lines,
            buf: Vec::new(),
            overflow: false,
        }
    }

    pub fn toledo() -> Framer {
        Framer {
            kind: Kind::Toledo,
            buf: Vec::new(),
            overflow: false,
        }
    }

    /// Feeds bytes; returns complete frames (lines without CR LF).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        match self.kind {
            Kind::Lines => self.push_lines(bytes),
            Kind::Toledo => self.push_toledo(bytes),
        }
    }

    fn push_lines(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' => {
                    if !self.overflow && !self.buf.is_empty() {
                        out.push(std::mem::take(&mut self.buf));
                    }
                    self.buf.clear();
                    self.overflow = false;
                }
                b'\r' => {}
                _ if self.buf.is_empty() && !(0x20..0x7f).contains(&b) => {}
                _ => {
                    if self.buf.len() >= MAX_FRAME {
                        self.overflow = true;
                    } else {
                        self.buf.push(b);
                    }
                }
            }
        }
        out
    }

    fn push_toledo(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.buf.is_empty() && b != STX {
                continue;
            }
            self.buf.push(b);
            if self.buf.len() == TOLEDO_LEN {
                if self.buf[TOLEDO_LEN - 2] == b'\r' {
                    out.push(std::mem::take(&mut self.buf));
                } else {
                    // Started on a byte that only looked like STX: resynchronise on the next.
                    match self.buf[1..].iter().position(|&c| c == STX) {
                        Some(i) => {
                            self.buf.drain(..=i);
                        }
                        None => self.buf.clear(),
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_lf_and_skip_leading_noise() {
        let mut f = Framer::lines();
        assert!(f.push(b"S S   ").is_empty());
        assert_eq!(
            f.push(b"  1.00 g\r\n\x06\xff\xfeES\r\n"),
            vec![b"S S     1.00 g".to_vec(), b"ES".to_vec()]
        );
        let long = vec![b'x'; MAX_FRAME + 10];
        assert!(f.push(&long).is_empty());
        assert!(f.push(b"\r\n").is_empty(), "overlong line is dropped");
        assert_eq!(f.push(b"ok\n"), vec![b"ok".to_vec()]);
    }

    #[test]
    fn toledo_frames_start_at_stx() {
        let mut f = Framer::toledo();
        let mut frame = vec![STX];
        frame.extend_from_slice(b"4! 014830000000\r");
        frame.push(0);
        let mut stream = b"\xff\x13".to_vec();
        stream.extend_from_slice(&frame);
        stream.extend_from_slice(&frame[..5]);
        assert_eq!(f.push(&stream), vec![frame.clone()]);
        assert_eq!(f.push(&frame[5..]), vec![frame]);
    }
}
