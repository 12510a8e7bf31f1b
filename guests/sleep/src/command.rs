//! The program on its target: reads the operands, waits, reports a bad command line.

use crate::{duration, wasi};

/// The whole command line must fit in this many bytes...
const ARGS_BYTES: usize = 1024;
/// ...and this many arguments (the program name among them).
const MAX_ARGS: usize = 32;

/// The program's entry, as a WASI command's: returning is exit code 0.
#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    let code = run();
    if code != 0 {
        wasi::exit(code);
    }
}

/// Waits as the arguments say; the exit code.
fn run() -> i32 {
    let mut buf = [0u8; ARGS_BYTES];
    let mut argv = [core::ptr::null_mut::<u8>(); MAX_ARGS];
    let args = match wasi::args(&mut buf, &mut argv) {
        Ok(args) => args,
        Err(msg) => return fail(&[msg]),
    };
    let mut total: u64 = 0;
    let mut operands = 0;
    for arg in args.skip(1) {
        match duration::parse_nanos(arg) {
            Some(ns) => total = total.saturating_add(ns),
            None => {
                let arg = core::str::from_utf8(arg).unwrap_or("(not UTF-8)");
                return fail(&["invalid time interval '", arg, "'"]);
            }
        }
        operands += 1;
    }
    if operands == 0 {
        return fail(&["missing operand"]);
    }
    match wasi::sleep(total) {
        Ok(()) => 0,
        Err(msg) => fail(&[msg]),
    }
}

/// Writes `sleep: <parts>` and a newline to stderr; the exit code of a failure.
fn fail(parts: &[&str]) -> i32 {
    wasi::stderr(b"sleep: ");
    for part in parts {
        wasi::stderr(part.as_bytes());
    }
    wasi::stderr(b"\n");
    1
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
