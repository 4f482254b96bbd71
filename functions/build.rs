//! The build script every function shares (each function's Cargo.toml: `build = "../build.rs"`).
//!
//! Release builds, the ones `sam build` deploys, are linked as position-dependent executables
//! (`-no-pie`), as Go's Lambda functions are by default. A position-independent executable carries a
//! dynamic relocation for every pointer in its read-only data (vtables, string tables), about 1 MB in
//! the loader functions, and the loader applies them all at each cold start; without PIE the linker
//! resolves them once. The cost is that the executable's own image is not address-randomised (its
//! stack, heap and mappings still are); a Lambda sandbox runs one function's code and nothing else.
//! Dev and test builds keep the default.
fn main() {
    println!("cargo:rerun-if-changed=../build.rs");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if release && linux {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
