//! Messages written without a data segment: a string literal would be the module's only
//! data, and a module with data gets a memory image that wasmtime maps into each fresh pool
//! slot (one more mmap and one more mapping per pod: 10,000 sleeping pods took 9% longer).
//! `say!` writes its text from 8-byte immediates in the code instead.

/// The `i`th 8-byte little-endian word of `s` (zero past its end).
pub const fn word(s: &str, i: usize) -> u64 {
    let b = s.as_bytes();
    let mut w = 0u64;
    let mut k = 0;
    while k < 8 {
        let at = i * 8 + k;
        if at < b.len() {
            w |= (b[at] as u64) << (8 * k);
        }
        k += 1;
    }
    w
}

/// Writes `$s` to stderr, its bytes as immediates in the code (`black_box` keeps the
/// optimizer from gathering them back into a constant in the data).
#[macro_export]
macro_rules! say {
    ($s:literal) => {{
        const S: &str = $s;
        const N: usize = S.len().div_ceil(8);
        let mut buf = [0u64; N];
        let mut i = 0;
        while i < N {
            buf[i] = core::hint::black_box($crate::text::word(S, i));
            i += 1;
        }
        // SAFETY: `buf` holds N * 8 >= S.len() initialized bytes.
        let bytes = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), S.len()) };
        $crate::wasi::stderr(bytes);
    }};
}
