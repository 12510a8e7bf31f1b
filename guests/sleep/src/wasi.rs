//! The WASI preview1 calls `sleep` makes, declared by hand (std would bring its own
//! start-up with it).

/// `subscription` of `poll_oneoff`, for a clock (the only kind used): 48 bytes, the union's
/// tag at 8 and its clock member at 16.
#[repr(C)]
struct Subscription {
    userdata: u64,
    /// `eventtype`: 0 is `clock`.
    tag: u8,
    _pad: [u8; 7],
    clock_id: u32,
    timeout: u64,
    precision: u64,
    /// `subclockflags`: 0 is a relative timeout.
    flags: u16,
}

const _: () = assert!(size_of::<Subscription>() == 48 && size_of::<Event>() == 32);

/// `event` of `poll_oneoff`.
#[repr(C)]
#[derive(Default)]
struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

/// `ciovec` of `fd_write`.
#[repr(C)]
struct Ciovec {
    buf: *const u8,
    len: usize,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn args_sizes_get(argc: *mut usize, size: *mut usize) -> u16;
    fn args_get(argv: *mut *mut u8, buf: *mut u8) -> u16;
    fn poll_oneoff(
        subscriptions: *const Subscription,
        events: *mut Event,
        n: usize,
        events_written: *mut usize,
    ) -> u16;
    fn fd_write(fd: u32, iovs: *const Ciovec, n: usize, written: *mut usize) -> u16;
    fn proc_exit(code: u32) -> !;
}

/// Ends the program with exit code `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: the call does not return.
    unsafe { proc_exit(code as u32) }
}

/// `clockid` `monotonic`.
const MONOTONIC: u32 = 1;

/// Why the arguments could not be read.
pub enum ArgsError {
    /// The host refused them.
    Unreadable,
    /// More than the room given for their starts.
    TooMany,
    /// Longer in all than the room given for their bytes.
    TooLong,
}

/// The command line's arguments, read into `buf` with their starts in `argv`.
pub fn args<'a>(
    buf: &'a mut [u8],
    argv: &'a mut [*mut u8],
) -> Result<impl Iterator<Item = &'a [u8]>, ArgsError> {
    let (mut argc, mut size) = (0, 0);
    // SAFETY: both pointers are to locals the call writes one usize each to.
    if unsafe { args_sizes_get(&mut argc, &mut size) } != 0 {
        return Err(ArgsError::Unreadable);
    }
    if argc > argv.len() {
        return Err(ArgsError::TooMany);
    }
    if size > buf.len() {
        return Err(ArgsError::TooLong);
    }
    // SAFETY: `args_sizes_get` said how much room the call needs; `argv` and `buf` have it.
    if unsafe { args_get(argv.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return Err(ArgsError::Unreadable);
    }
    let base = buf.as_ptr() as usize;
    let buf = &buf[..size];
    Ok(argv[..argc].iter().map(move |&p| {
        // Each argument is NUL-terminated inside `buf`, where the host put it.
        let start = (p as usize).saturating_sub(base).min(buf.len());
        let rest = &buf[start..];
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }))
}

/// Waits `nanos` nanoseconds on the monotonic clock; whether the host did.
pub fn sleep(nanos: u64) -> bool {
    let subscription = Subscription {
        userdata: 0,
        tag: 0,
        _pad: [0; 7],
        clock_id: MONOTONIC,
        timeout: nanos,
        precision: 0,
        flags: 0,
    };
    let mut event = Event::default();
    let mut n = 0;
    // SAFETY: one subscription in, room for one event out.
    let errno = unsafe { poll_oneoff(&subscription, &mut event, 1, &mut n) };
    errno == 0 && (n == 0 || event.error == 0)
}

/// Writes `bytes` to stderr; what cannot be written is dropped (there is nowhere to report it).
pub fn stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let iov = Ciovec {
            buf: bytes.as_ptr(),
            len: bytes.len(),
        };
        let mut written = 0;
        // SAFETY: one iovec over `bytes`, which outlives the call.
        if unsafe { fd_write(2, &iov, 1, &mut written) } != 0 || written == 0 {
            return;
        }
        bytes = &bytes[written.min(bytes.len())..];
    }
}
