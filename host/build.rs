//! Builds Nova's own plugins (`plugins/`, a workspace of its own) for `wasm32-wasip2` and puts
//! their components and manifests in OUT_DIR, where `plugins::catalogue` embeds them. This keeps
//! `cargo run` and `cargo test` the only set-up commands.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const EXTISM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for watched in ["plugins", "plugin-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    ensure_target(TARGET);
    // A target dir of its own beside the host's (a nested cargo must not wait on the lock the
    // outer one holds): <target>/<profile>/build/nova-host-*/out → <target>/nova-plugins.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map_or_else(|| out.join("plugins-target"), |t| t.join("nova-plugins"));
    cargo_build(&root.join("plugins/Cargo.toml"), TARGET, &target_dir)?;

    let built = target_dir.join(TARGET).join("release");
    let mut catalogue = String::new();
    for entry in std::fs::read_dir(root.join("plugins"))? {
        let dir = entry?.path();
        let manifest = dir.join("nova-plugin.toml");
        if !manifest.is_file() {
            continue;
        }
        let crate_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("plugin folders have UTF-8 names")
            .replace('-', "_");
        let wasm = built.join(format!("{crate_name}.wasm"));
        copy(&wasm, &out.join(format!("{crate_name}.wasm")))?;
        copy(&manifest, &out.join(format!("{crate_name}.toml")))?;
        catalogue += &format!(
            "({crate_name:?}, include_str!(concat!(env!(\"OUT_DIR\"), \"/{crate_name}.toml\")), \
             include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{crate_name}.wasm\"))),\n"
        );
    }
    std::fs::write(out.join("plugins.rs"), format!("[\n{catalogue}]\n"))?;
    // Plugins for the tests only (`OUT_DIR/testing_*.wasm`): they misbehave on purpose, or
    // are of the second format (Extism, a workspace of its own for wasm32-unknown-unknown).
    let extism_dir = root.join("plugins/testing/extism-tagger");
    ensure_target(EXTISM_TARGET);
    cargo_build(&extism_dir.join("Cargo.toml"), EXTISM_TARGET, &target_dir)?;
    for entry in std::fs::read_dir(root.join("plugins/testing"))? {
        let dir = entry?.path();
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            let crate_name = name.replace('-', "_");
            let from = if dir == extism_dir {
                target_dir.join(EXTISM_TARGET).join("release")
            } else {
                built.clone()
            };
            copy(
                &from.join(format!("{crate_name}.wasm")),
                &out.join(format!("testing_{crate_name}.wasm")),
            )?;
            copy(
                &dir.join("nova-plugin.toml"),
                &out.join(format!("testing_{crate_name}.toml")),
            )?;
        }
    }
    Ok(())
}

/// `cargo build --release` of the workspace at `manifest` for `target`, in `target_dir`.
fn cargo_build(manifest: &Path, target: &str, target_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", target, "--target-dir"])
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(manifest)
        // Cargo reads the plugins' .cargo/config.toml from the working directory.
        .current_dir(manifest.parent().unwrap_or(Path::new(".")));
    // The outer build's flags and wrappers (clippy's, a coverage tool's) are not the plugins'.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CLIPPY_ARGS",
    ] {
        build.env_remove(var);
    }
    let status = build.status()?;
    anyhow::ensure!(
        status.success(),
        "building {} for {target} failed ({status})",
        manifest.display()
    );
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("copying {} failed: {e}", from.display()))
}

/// Adds a target with rustup when it is missing (a fresh machine).
fn ensure_target(target: &str) {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == target)
        })
        .unwrap_or(true);
    if !installed {
        let _ = Command::new("rustup")
            .args(["target", "add", target])
            .status();
    }
}
