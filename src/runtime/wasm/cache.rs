//! The compiled-module cache on disk: the second run of a module skips Cranelift. An entry is
//! keyed by the module's SHA-256 and the engine's compilation settings, and carries its own
//! SHA-256, checked before wasmtime sees a byte of it: a torn, truncated or corrupted entry
//! is reported, compiled again and rewritten, never deserialized.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// First bytes of an entry; bumped whenever the layout changes.
const MAGIC: &[u8; 16] = b"wasmjob-cwasm-1\n";

/// A directory of compiled modules for one engine configuration.
pub(super) struct ModuleCache {
    dir: PathBuf,
    /// Hex SHA-256 of the engine's compatibility hash: entries of another configuration or
    /// wasmtime version live under other names.
    engine_key: String,
}

/// How a module was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Deserialized from a valid cache entry.
    Hit,
    /// Compiled (no entry, or one that failed its checks); the entry was (re)written.
    Compiled,
}

/// Feeds `Hash` output into SHA-256, so that the key is stable across processes (std's
/// hasher makes no such promise).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // never asked: the digest is taken from the inner state
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModuleCache {
    /// A cache in `dir` for modules compiled by `engine`. The directory is created on the
    /// first write, readable only by its owner.
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        ModuleCache {
            dir,
            engine_key: hex(&h.0.finalize()[..16]),
        }
    }

    fn entry(&self, module_digest: &[u8]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex(module_digest), self.engine_key))
    }

    /// The module whose bytes are `wasm` (with SHA-256 `digest`): from the cache when a valid
    /// entry exists, else compiled and stored. Failing to write the cache is only logged.
    pub(super) fn module(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &[u8],
    ) -> wasmtime::Result<(Module, Source)> {
        let path = self.entry(digest);
        match std::fs::read(&path) {
            Ok(bytes) => match verify(&bytes) {
                Ok(payload) => {
                    // SAFETY: `payload` is, byte for byte, what `Module::serialize` wrote for
                    // this engine configuration: `verify` checked its length and SHA-256
                    // against the header written with it. The directory is the user's own
                    // (mode 0700), so an entry is as trusted as the wasmjob binary.
                    match unsafe { Module::deserialize(engine, payload) } {
                        Ok(m) => return Ok((m, Source::Hit)),
                        Err(e) => tracing::warn!(
                            entry = %path.display(),
                            "compiled-module cache entry refused by wasmtime ({e}); compiling again"
                        ),
                    }
                }
                Err(why) => tracing::warn!(
                    entry = %path.display(),
                    "corrupted compiled-module cache entry ({why}); compiling again"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(entry = %path.display(), "reading the module cache: {e}"),
        }
        let module = Module::from_binary(engine, wasm)?;
        match module.serialize() {
            Ok(payload) => {
                if let Err(e) = self.store(&path, &payload) {
                    tracing::warn!(dir = %self.dir.display(), "writing the module cache: {e}");
                }
            }
            Err(e) => tracing::warn!("serializing a compiled module: {e}"),
        }
        Ok((module, Source::Compiled))
    }

    /// Writes an entry atomically: a temporary file in the same directory, renamed into place,
    /// so that a reader sees the whole entry or none.
    fn store(&self, path: &Path, payload: &[u8]) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&Sha256::digest(payload))?;
        tmp.write_all(&(payload.len() as u64).to_le_bytes())?;
        tmp.write_all(payload)?;
        tmp.as_file().sync_data()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The payload of an entry whose header, length and checksum hold.
fn verify(bytes: &[u8]) -> Result<&[u8], &'static str> {
    let header = MAGIC.len() + 32 + 8;
    if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a wasmjob cache entry");
    }
    let (sum, rest) = bytes[MAGIC.len()..].split_at(32);
    let (len, payload) = rest.split_at(8);
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "short header")?);
    if payload.len() as u64 != len {
        return Err("truncated");
    }
    if Sha256::digest(payload).as_slice() != sum {
        return Err("checksum mismatch");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn second_lookup_is_a_hit_and_runs_the_same_module() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let wasm = crate::bench::TRIVIAL_MODULE;
        let digest = Sha256::digest(wasm);
        let cache = ModuleCache::new(dir.path().join("c"), &engine);
        let (_, first) = cache.module(&engine, wasm, &digest).unwrap();
        let (m, second) = cache.module(&engine, wasm, &digest).unwrap();
        assert_eq!((first, second), (Source::Compiled, Source::Hit));
        assert!(m.get_export("_start").is_some());
        assert_eq!(entries(&dir.path().join("c")).len(), 1);
    }

    #[test]
    fn corrupted_entries_are_rebuilt_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let wasm = crate::bench::TRIVIAL_MODULE;
        let digest = Sha256::digest(wasm);
        let cache = ModuleCache::new(dir.path().to_path_buf(), &engine);
        cache.module(&engine, wasm, &digest).unwrap();
        let path = cache.entry(&digest);
        let good = std::fs::read(&path).unwrap();
        let flip = |i: usize| {
            let mut b = good.clone();
            b[i] ^= 0x40;
            b
        };
        for (what, bad) in [
            ("a flipped payload byte", flip(good.len() - 10)),
            ("a flipped checksum byte", flip(MAGIC.len() + 3)),
            ("a truncated entry", good[..good.len() / 2].to_vec()),
            ("an empty entry", Vec::new()),
            ("another format", b"\x7fELF not ours at all".to_vec()),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let (m, source) = cache.module(&engine, wasm, &digest).unwrap();
            assert_eq!(source, Source::Compiled, "{what} must not be trusted");
            assert!(m.get_export("_start").is_some());
            assert_eq!(std::fs::read(&path).unwrap(), good, "{what} is rewritten");
            assert_eq!(cache.module(&engine, wasm, &digest).unwrap().1, Source::Hit);
        }
    }

    #[test]
    fn engine_settings_and_module_bytes_are_part_of_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = engine();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let epochs = Engine::new(&config).unwrap();
        let wasm = crate::bench::TRIVIAL_MODULE;
        let digest = Sha256::digest(wasm);
        let a = ModuleCache::new(dir.path().to_path_buf(), &plain);
        let b = ModuleCache::new(dir.path().to_path_buf(), &epochs);
        assert_eq!(a.module(&plain, wasm, &digest).unwrap().1, Source::Compiled);
        assert_eq!(
            b.module(&epochs, wasm, &digest).unwrap().1,
            Source::Compiled
        );
        assert_eq!(entries(dir.path()).len(), 2);
        assert_ne!(a.entry(&digest), a.entry(&Sha256::digest(b"other")));
    }
}
