//! How `tarn` is linked decides what every short command pays before it starts: a
//! position-independent executable spends half of a one-week read relocating itself
//! (crates/tarn-cli/build.rs).

use crate::common::*;

/// On Linux, `tarn` is a position-dependent executable (ELF type `ET_EXEC`) unless it was
/// built with `TARN_PIE=1`: its loader has no relative relocations to apply.
#[test]
#[cfg(target_os = "linux")]
fn tarn_is_linked_position_dependent() {
    if option_env!("TARN_PIE").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let mut bytes = [0u8; 18];
    std::io::Read::read_exact(
        &mut std::fs::File::open(TARN).expect("open the tarn binary"),
        &mut bytes,
    )
    .expect("read its ELF header");
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    // e_type, little-endian at offset 16: 2 is ET_EXEC, 3 is ET_DYN (a PIE).
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    assert_eq!(e_type, 2, "tarn is linked as a PIE (e_type {e_type})");
}
