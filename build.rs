//! Builds the example guests in `guests/` for wasm32-wasip1 (installing the target with rustup
//! if it is missing) and copies them to `guests/bin/`, where the examples and tests find them.
//! Set WASMJOB_SKIP_GUESTS=1 to skip (e.g. when packaging without guests).

use std::path::Path;
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";
const GUESTS: &[&str] = &["pi", "queue-consumer", "sleep", "testbed"];
/// Guest libraries: a change rebuilds the guests too.
const GUEST_LIBS: &[&str] = &["queue"];

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let guests = Path::new(&root).join("guests");
    println!("cargo:rerun-if-env-changed=WASMJOB_SKIP_GUESTS");
    println!("cargo:rerun-if-changed=guests/Cargo.toml");
    println!("cargo:rerun-if-changed=guests/Cargo.lock");
    for lib in GUEST_LIBS {
        println!("cargo:rerun-if-changed=guests/{lib}/Cargo.toml");
        println!("cargo:rerun-if-changed=guests/{lib}/src");
    }
    for g in GUESTS {
        println!("cargo:rerun-if-changed=guests/{g}/Cargo.toml");
        println!("cargo:rerun-if-changed=guests/{g}/src");
        println!("cargo:rerun-if-changed=guests/bin/{g}.wasm");
    }
    if std::env::var_os("WASMJOB_SKIP_GUESTS").is_some() || !guests.join("Cargo.toml").exists() {
        return;
    }
    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(guests.join("target"));
    // The outer build's flags and target settings are for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the guests: {e}"));
    assert!(
        status.success(),
        "building the guests in guests/ for {TARGET} failed (see above)"
    );
    let bin = guests.join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("creating {}: {e}", bin.display()));
    for g in GUESTS {
        let built = guests
            .join("target")
            .join(TARGET)
            .join("release")
            .join(format!("{g}.wasm"));
        let dest = bin.join(format!("{g}.wasm"));
        std::fs::copy(&built, &dest)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), dest.display()));
    }
}

/// Installs the wasm32-wasip1 target with rustup when the sysroot lacks it.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(root) = sysroot
        && Path::new(&root).join("lib/rustlib").join(TARGET).exists()
    {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the {TARGET} target is missing and `rustup target add {TARGET}` failed: install it by hand"
    );
}
