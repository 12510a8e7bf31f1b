//! Pod logs: a bounded buffer per container run, optionally streamed live with kubectl's
//! `--prefix` format (`[pod/NAME/CONTAINER] line`).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Default cap on one container run's log, as the kubelet's `containerLogMaxSize` (10Mi).
pub const DEFAULT_LOG_LIMIT: usize = 10 << 20;

/// Where live log lines go (the terminal, usually).
pub struct LogStream {
    out: Mutex<Box<dyn Write + Send>>,
}

impl LogStream {
    /// Streams lines to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Arc<Self> {
        Arc::new(LogStream {
            out: Mutex::new(out),
        })
    }

    fn line(&self, prefix: &str, line: &[u8]) {
        // One write per line: the live view writes its lines to the same stderr (under no
        // lock of ours), and one of them written between a log line's prefix, text and
        // newline would cut that line in two or glue its end to another.
        let mut whole = Vec::with_capacity(prefix.len() + line.len() + 1);
        whole.extend_from_slice(prefix.as_bytes());
        whole.extend_from_slice(line);
        whole.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed terminal must not fail the pod: output errors are dropped.
        let _ = out.write_all(&whole).and_then(|()| out.flush());
    }
}

/// A run's log as it ended: see [`PodLog::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// When the run's guest started, if it did.
    pub started: Option<tokio::time::Instant>,
    /// Whether the log holds nothing ([`PodLog::is_blank`]).
    pub blank: bool,
}

/// One container run's log: stdout and stderr interleaved, as `kubectl logs` shows them.
pub struct PodLog {
    cap: usize,
    prefix: String,
    stream: Option<Arc<LogStream>>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    data: Vec<u8>,
    dropped: u64,
    /// Start of the line not yet streamed.
    streamed: usize,
    /// Bytes already handed to the state store.
    saved: usize,
    /// Whether the run has ended (no more output).
    ended: bool,
    /// Whether the truncation notice was handed to the state store.
    notice_saved: bool,
    /// When the run's guest started, once it has (the kubelet's note, kept with the run's
    /// other state: a `OnceLock` of its own cost more to set than this lock).
    started: Option<tokio::time::Instant>,
}

impl PodLog {
    /// An empty log for container `container` of pod `pod`, keeping at most `cap` bytes.
    pub fn new(
        pod: &str,
        container: &str,
        cap: usize,
        stream: Option<Arc<LogStream>>,
    ) -> Arc<Self> {
        Arc::new(PodLog {
            cap,
            prefix: Self::prefix(pod, container, &stream),
            stream,
            inner: Mutex::default(),
        })
    }

    /// [`PodLog::new`], made of `old` if nothing else holds it (a finished run's log that its
    /// pod no longer keeps: the host keeps its one blank log instead): a pod's task reuses
    /// one allocation from pod to pod rather than allocating and freeing one each.
    pub fn renew(
        old: Option<Arc<Self>>,
        pod: &str,
        container: &str,
        cap: usize,
        stream: Option<Arc<LogStream>>,
    ) -> Arc<Self> {
        let Some(mut old) = old else {
            return Self::new(pod, container, cap, stream);
        };
        let Some(log) = Arc::get_mut(&mut old) else {
            return Self::new(pod, container, cap, stream);
        };
        log.cap = cap;
        if stream.is_some() || !log.prefix.is_empty() {
            log.prefix = Self::prefix(pod, container, &stream);
        }
        log.stream = stream;
        let inner = log.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut data = std::mem::take(&mut inner.data);
        data.clear();
        *inner = Inner {
            data,
            ..Inner::default()
        };
        old
    }

    /// The prefix of streamed lines: only for streaming (one format per run saved where
    /// nothing streams).
    fn prefix(pod: &str, container: &str, stream: &Option<Arc<LogStream>>) -> String {
        match stream {
            Some(_) => format!("[pod/{pod}/{container}] "),
            None => String::new(),
        }
    }

    /// Notes that the run started at `at` (the first note stands). An instant of tokio's
    /// clock, not a timestamp: the sandbox notes it without a [`crate::clock::Clock`], and
    /// the kubelet converts it once it reports it.
    pub fn mark_started(&self, at: tokio::time::Instant) {
        self.lock().started.get_or_insert(at);
    }

    /// The log's state, also after a panic while it was held (the log is kept, not lost).
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the run started, if it has.
    pub fn started(&self) -> Option<tokio::time::Instant> {
        self.lock().started
    }

    /// Appends output; bytes past the cap are counted and dropped, never refused, so a
    /// flooding guest neither fails nor exhausts the host.
    pub fn write(&self, bytes: &[u8]) {
        let mut g = self.lock();
        let room = self.cap.saturating_sub(g.data.len());
        let keep = room.min(bytes.len());
        g.data.extend_from_slice(&bytes[..keep]);
        g.dropped += (bytes.len() - keep) as u64;
        if let Some(stream) = &self.stream {
            while let Some(nl) = g.data[g.streamed..].iter().position(|&b| b == b'\n') {
                let end = g.streamed + nl;
                stream.line(&self.prefix, &g.data[g.streamed..end]);
                g.streamed = end + 1;
            }
        }
    }

    /// Appends a line written by the host (e.g. a trap message), past the cap if need be.
    pub fn note(&self, line: &str) {
        self.finish();
        let mut g = self.lock();
        g.data.extend_from_slice(line.as_bytes());
        g.data.push(b'\n');
        if let Some(stream) = &self.stream {
            stream.line(&self.prefix, line.as_bytes());
        }
        g.streamed = g.data.len();
    }

    /// Streams a last unterminated line and reports truncation; call when the run ends.
    /// Returns what the kubelet reports of the run's log then, read under the one lock.
    pub fn finish(&self) -> Ended {
        let mut g = self.lock();
        if let Some(stream) = &self.stream {
            if g.streamed < g.data.len() {
                stream.line(&self.prefix, &g.data[g.streamed..]);
            }
            if g.dropped > 0 && g.streamed <= self.cap {
                stream.line(&self.prefix, self.notice(g.dropped).as_bytes());
            }
        }
        g.streamed = g.data.len() + 1;
        g.ended = true;
        Ended {
            started: g.started,
            blank: g.data.is_empty() && g.dropped == 0,
        }
    }

    fn notice(&self, dropped: u64) -> String {
        format!(
            "[wasmjob: log truncated at {} bytes; {dropped} more bytes dropped]",
            self.cap
        )
    }

    /// Whether the log holds nothing: no output, nothing dropped.
    pub fn is_blank(&self) -> bool {
        let g = self.lock();
        g.data.is_empty() && g.dropped == 0
    }

    /// Output not yet handed to the state store (and, once the run has ended, the truncation
    /// notice); each byte is handed over once.
    pub fn take_unsaved(&self) -> Vec<u8> {
        let mut g = self.lock();
        let mut out = g.data[g.saved..].to_vec();
        g.saved = g.data.len();
        if g.ended && g.dropped > 0 && !g.notice_saved {
            g.notice_saved = true;
            if g.data.last().is_some_and(|&b| b != b'\n') {
                out.push(b'\n');
            }
            out.extend_from_slice(self.notice(g.dropped).as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Whether [`PodLog::take_unsaved`] has anything to hand over.
    pub fn has_unsaved(&self) -> bool {
        let g = self.lock();
        g.data.len() > g.saved || (g.ended && g.dropped > 0 && !g.notice_saved)
    }

    /// The log so far, with a truncation notice if output was dropped.
    pub fn contents(&self) -> Vec<u8> {
        let g = self.lock();
        let mut out = g.data.clone();
        if g.dropped > 0 {
            if out.last().is_some_and(|&b| b != b'\n') {
                out.push(b'\n');
            }
            out.extend_from_slice(self.notice(g.dropped).as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Bytes written past the cap.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each write call, apart.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log of container `container` of pod `pod` streamed to a recording writer.
    fn streamed(pod: &str, container: &str) -> (Writes, Arc<PodLog>) {
        let out = Writes::default();
        let stream = LogStream::new(Box::new(out.clone()));
        (out, PodLog::new(pod, container, 1024, Some(stream)))
    }

    #[test]
    fn streams_whole_lines_with_kubectl_prefix() {
        let (out, log) = streamed("pi-abcde", "pi");
        log.write(b"3.14");
        log.write(b"15\nsecond");
        log.finish();
        let text = String::from_utf8(out.0.lock().unwrap().concat()).unwrap();
        assert_eq!(text, "[pod/pi-abcde/pi] 3.1415\n[pod/pi-abcde/pi] second\n");
        assert_eq!(log.contents(), b"3.1415\nsecond");
    }

    /// The live view writes its own lines to the same stderr: a log line written in parts
    /// could be cut by one (a queue test once lost a `Done` line glued to a status line).
    #[test]
    fn each_streamed_line_is_one_write() {
        let (out, log) = streamed("q-abcde", "c");
        log.write(b"Working on fig\nDone fig\nlast");
        log.finish();
        let writes: Vec<String> = (out.0.lock().unwrap().iter())
            .map(|w| String::from_utf8(w.clone()).unwrap())
            .collect();
        assert_eq!(
            writes,
            [
                "[pod/q-abcde/c] Working on fig\n",
                "[pod/q-abcde/c] Done fig\n",
                "[pod/q-abcde/c] last\n"
            ]
        );
    }

    #[test]
    fn keeps_the_first_cap_bytes_and_counts_the_rest() {
        let log = PodLog::new("p", "c", 10, None);
        log.write(&[b'x'; 25]);
        assert_eq!(log.dropped(), 15);
        let text = String::from_utf8(log.contents()).unwrap();
        assert!(
            text.starts_with(
                "xxxxxxxxxx\n[wasmjob: log truncated at 10 bytes; 15 more bytes dropped]"
            ),
            "{text}"
        );
    }

    /// A finished run's log that nothing else holds is reused, empty, for the next run; one
    /// still held (its pod keeps it: it has output) is left alone.
    #[test]
    fn a_log_let_go_is_renewed_in_place_and_a_kept_one_is_not() {
        let log = PodLog::new("p-1", "c", 10, None);
        log.mark_started(tokio::time::Instant::now());
        log.write(&[b'x'; 25]);
        log.finish();
        let at = Arc::as_ptr(&log);
        let renewed = PodLog::renew(Some(log), "p-2", "c", 20, None);
        assert_eq!(Arc::as_ptr(&renewed), at);
        assert!(renewed.is_blank());
        assert_eq!(renewed.started(), None);
        assert_eq!(renewed.dropped(), 0);
        renewed.write(&[b'y'; 25]);
        assert_eq!(renewed.contents()[..20], [b'y'; 20]);
        assert_eq!(renewed.dropped(), 5);

        let kept = renewed.clone();
        let fresh = PodLog::renew(Some(renewed), "p-3", "c", 20, None);
        assert_ne!(Arc::as_ptr(&fresh), Arc::as_ptr(&kept));
        assert!(fresh.is_blank());
        assert_eq!(kept.dropped(), 5);

        // A renewed log streams under its new pod's name.
        let (out, log) = streamed("q-1", "c");
        let (stream, at) = (log.stream.clone(), Arc::as_ptr(&log));
        let log = PodLog::renew(Some(log), "q-2", "c", 100, stream);
        assert_eq!(Arc::as_ptr(&log), at);
        log.write(b"hi\n");
        let writes = out.0.lock().unwrap().clone();
        assert_eq!(writes, [b"[pod/q-2/c] hi\n".to_vec()]);
    }
}
