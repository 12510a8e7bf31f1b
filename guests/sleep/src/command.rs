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
        Err(wasi::ArgsError::Unreadable) => {
            crate::say!("sleep: cannot read the arguments\n");
            return 1;
        }
        Err(wasi::ArgsError::TooMany) => {
            crate::say!("sleep: too many arguments\n");
            return 1;
        }
        Err(wasi::ArgsError::TooLong) => {
            crate::say!("sleep: arguments too long\n");
            return 1;
        }
    };
    let mut total: u64 = 0;
    let mut operands = 0;
    for arg in args.skip(1) {
        match duration::parse_nanos(arg) {
            Some(ns) => total = total.saturating_add(ns),
            None => {
                crate::say!("sleep: invalid time interval '");
                wasi::stderr(arg);
                crate::say!("'\n");
                return 1;
            }
        }
        operands += 1;
    }
    if operands == 0 {
        crate::say!("sleep: missing operand\n");
        return 1;
    }
    if !wasi::sleep(total) {
        crate::say!("sleep: the host refused the wait\n");
        return 1;
    }
    0
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
