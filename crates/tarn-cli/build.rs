//! Links `tarn` as a position-dependent executable on Linux.
//!
//! A position-independent `tarn` carries about 240,000 relative relocations: at every start
//! the dynamic loader reads 5.8 MB of relocation records and writes 4 MB of pointers (a
//! copy-on-write fault per page). That was half of what a short command such as an append
//! or a one-week read spent: `tarn --version` took 4.3 ms and 1,349 page faults as a PIE,
//! 2.1 ms and 235 faults linked this way. The code is still compiled position-independent;
//! only the executable's own load address is fixed (shared libraries, heap, stack and
//! mappings stay randomised). `TARN_PIE=1` at build time keeps a PIE for those who prefer
//! a randomised executable image to the faster start.

fn main() {
    println!("cargo:rerun-if-env-changed=TARN_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let pie = std::env::var("TARN_PIE").is_ok_and(|v| !v.is_empty() && v != "0");
    if os == "linux" && !pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
