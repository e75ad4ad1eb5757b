//! Fuzzes every scale protocol parser through its framer: arbitrary serial bytes must give a
//! reply or a typed error, never a panic. Run: `cd edge-agent/fuzz && cargo +nightly fuzz run scale_parsers`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metcon_edge::scale::Protocol;
use metcon_shared::mass::MassUnit;

fuzz_target!(|data: &[u8]| {
    for protocol in Protocol::ALL {
        // the frame as one piece, as the framer would cut it, and byte by byte
        let _ = protocol.parse(data, MassUnit::G);
        let mut framer = protocol.framer();
        for chunk in data.chunks(7) {
            for frame in framer.push(chunk) {
                let _ = protocol.parse(&frame, MassUnit::G);
            }
        }
    }
    let _ = metcon_shared::reading::key_id(data);
});
