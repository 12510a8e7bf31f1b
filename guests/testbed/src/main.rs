//! `testbed`: a scriptable WASI guest for wasmjob's tests and demos. Its arguments are a
//! list of steps (see [`steps::Step`]), e.g.
//! `testbed echo starting alloc 64Mi sleep 500 print 1Ki exit 3`, run left to right.
//!
//! Exit codes of its own: 0 after the last step, 1 for a failed `read`/`write`/`fail-until`,
//! 2 for a bad command line (reported before any step runs), 3 when stdout cannot be written.

mod steps;

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use steps::Step;

/// Writes a line to stderr. A failure to write is ignored: there is nowhere left to report it.
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr().lock(), $($arg)*);
    }};
}

/// `print` writes in 64 KiB chunks, large enough to keep the number of host calls low.
const PRINT_CHUNK: usize = 64 * 1024;
/// `print` output is lines of this many bytes (79 × 'x' plus '\n').
const PRINT_LINE: usize = 80;
/// Page size used by `alloc` to touch memory; one write per page commits it on the host.
const PAGE: usize = 4096;

fn main() {
    let mut args = Vec::new();
    // argv[0] is the program name; everything after it is the script.
    for (i, arg) in std::env::args_os().enumerate().skip(1) {
        match arg.into_string() {
            Ok(s) => args.push(s),
            Err(raw) => {
                errln!("testbed: bad step: argument {i} ({raw:?}) is not valid UTF-8");
                exit(2);
            }
        }
    }
    let steps = match steps::parse(args) {
        Ok(steps) => steps,
        Err(e) => {
            errln!("testbed: {e}");
            exit(2);
        }
    };
    for step in steps {
        run(step);
        // Flushing after every step makes output visible before a following sleep, spin,
        // trap or abort, which never flush on their own.
        flush_stdout();
    }
}

fn run(step: Step) {
    match step {
        Step::Exit(code) => exit(code),
        Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
        Step::Spin => spin(),
        Step::Alloc(bytes) => alloc(bytes),
        Step::Print(bytes) => print(bytes),
        Step::Trap => trap(),
        Step::Read(path) => match std::fs::read(&path) {
            Ok(contents) => out(&contents),
            Err(e) => {
                errln!("read {}: {e}", path.display());
                exit(1);
            }
        },
        Step::Write(path, text) => {
            if let Err(e) = std::fs::write(&path, text) {
                errln!("write {}: {e}", path.display());
                exit(1);
            }
        }
        Step::Env(name) => {
            let mut line = std::env::var_os(name)
                .map(|v| v.into_encoded_bytes())
                .unwrap_or_default();
            line.push(b'\n');
            out(&line);
        }
        Step::FailUntil(path, n) => fail_until(&path, n),
        Step::Echo(text) => out(format!("{text}\n").as_bytes()),
        Step::Stderr(text) => errln!("{text}"),
        Step::Date => out(format!("{}\n", date(std::time::SystemTime::now())).as_bytes()),
        Step::ExitIfIndex(ranges, code) => {
            let index = std::env::var("JOB_COMPLETION_INDEX").ok();
            if let Some(i) = index.and_then(|i| i.parse::<u32>().ok())
                && ranges.iter().any(|&(a, b)| (a..=b).contains(&i))
            {
                exit(code);
            }
        }
        Step::Pick(list) => {
            let index = std::env::var("JOB_COMPLETION_INDEX").unwrap_or_default();
            let item = index
                .parse::<usize>()
                .ok()
                .and_then(|i| list.split(',').nth(i));
            match item {
                Some(item) => out(format!("Processing {item} (index {index})\n").as_bytes()),
                None => {
                    errln!("pick: no item for JOB_COMPLETION_INDEX={index:?} in {list:?}");
                    exit(1);
                }
            }
        }
    }
}

/// `date`'s default format in UTC, from the WASI realtime clock.
fn date(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {day:2} {:02}:{:02}:{:02} UTC {year}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes to stdout; exit code 3 if that fails (e.g. the host closed or limited the stream).
fn out(bytes: &[u8]) {
    if let Err(e) = io::stdout().lock().write_all(bytes) {
        errln!("testbed: writing stdout: {e}");
        exit(3);
    }
}

fn flush_stdout() {
    if let Err(e) = io::stdout().lock().flush() {
        errln!("testbed: writing stdout: {e}");
        exit(3);
    }
}

/// Exits with `code`, flushing stdout first (a failed flush becomes exit code 3).
fn exit(code: i32) -> ! {
    flush_stdout();
    std::process::exit(code)
}

/// Runs forever; `black_box` keeps the optimizer from removing the side-effect-free loop.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates `bytes`, writes one byte per page so the memory is really committed, and leaks
/// it so that later steps run with it still allocated. A failing allocation aborts (a trap in
/// wasm), which is how a memory limit shows up to the host.
fn alloc(bytes: u64) {
    let len = match usize::try_from(bytes) {
        Ok(len) if len <= isize::MAX as usize => len,
        // Cannot exist in this address space (e.g. > 2 GiB on wasm32); fail like an
        // allocation failure instead of panicking with "capacity overflow".
        _ => {
            errln!("testbed: alloc {bytes}: larger than the address space");
            flush_stdout();
            std::process::abort();
        }
    };
    let mut buf = vec![0u8; len];
    for i in (0..len).step_by(PAGE) {
        buf[i] = 1;
    }
    std::mem::forget(std::hint::black_box(buf));
}

/// Writes exactly `bytes` bytes of 80-byte 'x' lines (the last one possibly cut short).
fn print(bytes: u64) {
    // One line longer than a chunk, so each chunk can start at any offset within a line and
    // the pattern continues seamlessly across chunks.
    let pattern: Vec<u8> = (0..PRINT_CHUNK + PRINT_LINE)
        .map(|i| {
            if i % PRINT_LINE == PRINT_LINE - 1 {
                b'\n'
            } else {
                b'x'
            }
        })
        .collect();
    let mut stdout = io::stdout().lock();
    let mut written: u64 = 0;
    while written < bytes {
        let offset = (written % PRINT_LINE as u64) as usize;
        let len = (bytes - written).min(PRINT_CHUNK as u64) as usize;
        if let Err(e) = stdout.write_all(&pattern[offset..offset + len]) {
            errln!("testbed: print: writing stdout after {written} bytes: {e}");
            exit(3);
        }
        written += len as u64;
    }
}

/// Ends the program the way a crashing guest does: a wasm trap (natively: SIGABRT).
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        std::arch::wasm32::unreachable()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::process::abort()
    }
}

/// Counts attempts in the file at `path` across runs (e.g. pod retries sharing a host
/// directory) and fails until the count exceeds `n`.
fn fail_until(path: &Path, n: u64) {
    let previous = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => 0,
        Ok(text) => match steps::parse_int::<u64>(text.trim()) {
            Ok(count) => count,
            Err(why) => {
                errln!(
                    "fail-until {}: counter {:?}: {why}",
                    path.display(),
                    text.trim()
                );
                exit(1);
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => {
            errln!("fail-until {}: {e}", path.display());
            exit(1);
        }
    };
    let attempt = previous.saturating_add(1);
    if let Err(e) = std::fs::write(path, format!("{attempt}\n")) {
        errln!("fail-until {}: {e}", path.display());
        exit(1);
    }
    if attempt <= n {
        errln!("attempt {attempt} of fail-until {n}: failing");
        exit(1);
    }
    out(format!("attempt {attempt}: passing\n").as_bytes());
}

#[cfg(test)]
mod date_tests {
    use super::date;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_like_date_in_utc() {
        assert_eq!(date(UNIX_EPOCH), "Thu Jan  1 00:00:00 UTC 1970");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_442_460);
        assert_eq!(date(t), "Mon Nov 23 14:01:00 UTC 2026");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(date(leap), "Tue Feb 29 00:00:00 UTC 2000");
    }
}
