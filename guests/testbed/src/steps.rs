//! Parsing of testbed's command line into [`Step`]s.
//!
//! All arguments are parsed before any step runs, so a typo late in the list is reported
//! (exit 2) instead of surfacing after earlier steps already had side effects.

use std::fmt;
use std::path::PathBuf;

/// One action of the script, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `exit N`: terminate now with code N. Note that WASI preview 1 only defines codes
    /// 0..126; wasmtime turns a larger (or negative) code into an error, not an exit code.
    Exit(i32),
    /// `sleep MS`: sleep (WASI `poll_oneoff` on a clock) for MS milliseconds.
    Sleep(u64),
    /// `spin`: burn CPU forever, to exercise deadlines / epoch interruption.
    Spin,
    /// `alloc BYTES`: allocate, touch and leak BYTES bytes, to exercise memory limits.
    Alloc(u64),
    /// `print BYTES`: write exactly BYTES bytes to stdout, to exercise log capture limits.
    Print(u64),
    /// `trap`: execute a wasm `unreachable` instruction.
    Trap,
    /// `read PATH`: copy a file's contents to stdout.
    Read(PathBuf),
    /// `write PATH TEXT`: create/truncate PATH and write TEXT into it.
    Write(PathBuf, String),
    /// `env NAME`: print the variable's value (an empty line if unset).
    Env(String),
    /// `fail-until PATH N`: bump a counter file; fail (exit 1) while it is <= N. Lets a Job
    /// exercise retries: the pod fails N times, then succeeds.
    FailUntil(PathBuf, u64),
    /// `echo TEXT`: print TEXT and a newline to stdout.
    Echo(String),
    /// `stderr TEXT`: print TEXT and a newline to stderr.
    Stderr(String),
    /// `pick LIST`: print `Processing ITEM (index N)` for the item of the comma-separated LIST at
    /// the Indexed Job's `JOB_COMPLETION_INDEX` (the docs' "static work assignment").
    Pick(String),
    /// `date`: print the current time as `date` does in UTC, e.g. `Mon Nov 23 14:01:00 UTC 2026`.
    Date,
    /// `exit-if-index LIST N`: exit with code N if `JOB_COMPLETION_INDEX` is in LIST, indexes
    /// and ranges as Kubernetes writes them (`0,2-4`); otherwise go on. Lets an Indexed Job's
    /// indexes behave differently.
    ExitIfIndex(Vec<(u32, u32)>, i32),
}

/// Why the command line could not be parsed. `Display` gives the message after `testbed: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Index in argv (argv[0] being the program name) of the step's keyword.
    pub position: usize,
    /// The keyword as given.
    pub keyword: String,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad step {:?} at argument {}: {}",
            self.keyword, self.position, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses the arguments after argv[0] into steps. An empty list is a valid, empty script.
pub fn parse<I>(args: I) -> Result<Vec<Step>, ParseError>
where
    I: IntoIterator<Item = String>,
{
    // Positions start at 1 because argv[0] (the program name) is not passed in.
    let mut args = args.into_iter().zip(1..);
    let mut steps = Vec::new();
    while let Some((keyword, position)) = args.next() {
        let err = |reason: String| ParseError {
            position,
            keyword: keyword.clone(),
            reason,
        };
        // Fetches the next argument as the named operand of this step.
        let mut operand = |name: &str| {
            args.next()
                .map(|(value, _)| value)
                .ok_or_else(|| err(format!("missing operand {name}")))
        };
        let step = match keyword.as_str() {
            "exit" => {
                let v = operand("N")?;
                Step::Exit(parse_int(&v).map_err(|why| err(format!("N {v:?}: {why}")))?)
            }
            "sleep" => {
                let v = operand("MS")?;
                Step::Sleep(parse_int(&v).map_err(|why| err(format!("MS {v:?}: {why}")))?)
            }
            "spin" => Step::Spin,
            "alloc" => {
                let v = operand("BYTES")?;
                Step::Alloc(parse_bytes(&v).map_err(|why| err(format!("BYTES {v:?}: {why}")))?)
            }
            "print" => {
                let v = operand("BYTES")?;
                Step::Print(parse_bytes(&v).map_err(|why| err(format!("BYTES {v:?}: {why}")))?)
            }
            "trap" => Step::Trap,
            "read" => Step::Read(operand("PATH")?.into()),
            "write" => {
                let path = operand("PATH")?;
                Step::Write(path.into(), operand("TEXT")?)
            }
            "env" => Step::Env(operand("NAME")?),
            "fail-until" => {
                let path = operand("PATH")?;
                let v = operand("N")?;
                let n = parse_int(&v).map_err(|why| err(format!("N {v:?}: {why}")))?;
                Step::FailUntil(path.into(), n)
            }
            "echo" => Step::Echo(operand("TEXT")?),
            "date" => Step::Date,
            "pick" => Step::Pick(operand("LIST")?),
            "stderr" => Step::Stderr(operand("TEXT")?),
            "exit-if-index" => {
                let list = operand("LIST")?;
                let ranges =
                    parse_ranges(&list).map_err(|why| err(format!("LIST {list:?}: {why}")))?;
                let v = operand("N")?;
                Step::ExitIfIndex(
                    ranges,
                    parse_int(&v).map_err(|why| err(format!("N {v:?}: {why}")))?,
                )
            }
            _ => return Err(err("unknown step".to_owned())),
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Parses `0,2-4` into inclusive ranges.
pub fn parse_ranges(s: &str) -> Result<Vec<(u32, u32)>, String> {
    s.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => Ok((parse_int(a)?, parse_int(b)?)),
            None => parse_int(part).map(|i| (i, i)),
        })
        .collect()
}

/// Parses a plain decimal integer (a leading `-` only where the type is signed).
pub fn parse_int<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    // `FromStr` for integers also accepts a leading `+`; keep the accepted syntax minimal.
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not an integer".to_owned());
    }
    s.parse()
        .map_err(|_| "out of range (or negative)".to_owned())
}

/// Parses a byte count: a plain integer, optionally followed by `Ki`, `Mi` or `Gi`
/// (powers of 1024, as in Kubernetes quantities).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let (number, multiplier) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
        .into_iter()
        .find_map(|(suffix, mult)| s.strip_suffix(suffix).map(|rest| (rest, mult)))
        .unwrap_or((s, 1));
    if number.starts_with('-') {
        return Err("negative".to_owned());
    }
    let n: u64 = parse_int(number)?;
    n.checked_mul(multiplier)
        .ok_or_else(|| "out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Vec<Step>, ParseError> {
        parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn index_lists() {
        assert_eq!(
            parse_strs(&["exit-if-index", "0,2-4", "42"]),
            Ok(vec![Step::ExitIfIndex(vec![(0, 0), (2, 4)], 42)])
        );
        assert!(parse_strs(&["exit-if-index", "0,x", "1"]).is_err());
    }

    #[test]
    fn empty_script_is_valid() {
        assert_eq!(parse_strs(&[]), Ok(vec![]));
    }

    #[test]
    fn parses_every_step() {
        let steps = parse_strs(&[
            "echo",
            "hello world",
            "stderr",
            "oops",
            "env",
            "HOME",
            "sleep",
            "250",
            "alloc",
            "64Mi",
            "print",
            "100",
            "read",
            "/data/in.txt",
            "write",
            "/data/out.txt",
            "some text",
            "fail-until",
            "/data/count",
            "3",
            "spin",
            "trap",
            "exit",
            "7",
        ])
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Echo("hello world".into()),
                Step::Stderr("oops".into()),
                Step::Env("HOME".into()),
                Step::Sleep(250),
                Step::Alloc(64 << 20),
                Step::Print(100),
                Step::Read("/data/in.txt".into()),
                Step::Write("/data/out.txt".into(), "some text".into()),
                Step::FailUntil("/data/count".into(), 3),
                Step::Spin,
                Step::Trap,
                Step::Exit(7),
            ]
        );
    }

    #[test]
    fn operands_are_taken_verbatim_even_if_they_look_like_steps() {
        assert_eq!(
            parse_strs(&["echo", "exit", "write", "trap", ""]),
            Ok(vec![
                Step::Echo("exit".into()),
                Step::Write("trap".into(), String::new())
            ])
        );
    }

    #[test]
    fn byte_suffixes() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1Ki"), Ok(1024));
        assert_eq!(parse_bytes("64Mi"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("16Gi"), Ok(16 << 30));
        for bad in [
            "", "Ki", "-1", "-1Ki", "+5", "1.5Mi", "1K", "1M", "1G", "1Ti", "1ki", "1 Mi", "Mi1",
            "1KiB", "0x10",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bytes("18446744073709551615").is_ok());
        assert!(parse_bytes("18446744073709551616").is_err());
        assert!(parse_bytes("17179869184Gi").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int::<i32>("-1"), Ok(-1));
        assert_eq!(parse_int::<u64>("042"), Ok(42));
        assert!(parse_int::<u64>("-1").is_err());
        assert!(parse_int::<i32>("+1").is_err());
        assert!(parse_int::<i32>("-").is_err());
        assert!(parse_int::<i32>("2147483648").is_err());
        assert!(parse_int::<u64>("1Ki").is_err());
    }

    #[test]
    fn unknown_step_is_reported_with_position() {
        let err = parse_strs(&["echo", "hi", "bogus", "1"]).unwrap_err();
        assert_eq!(err.position, 3);
        assert_eq!(err.keyword, "bogus");
        assert_eq!(
            err.to_string(),
            "bad step \"bogus\" at argument 3: unknown step"
        );
    }

    #[test]
    fn error_after_valid_steps_fails_the_whole_parse() {
        // Nothing is returned for the valid `write` step, so main never executes it.
        assert!(parse_strs(&["write", "/tmp/x", "y", "sleep", "soon"]).is_err());
    }

    #[test]
    fn missing_operands() {
        for (args, want) in [
            (
                &["exit"][..],
                "bad step \"exit\" at argument 1: missing operand N",
            ),
            (
                &["sleep"][..],
                "bad step \"sleep\" at argument 1: missing operand MS",
            ),
            (
                &["alloc"][..],
                "bad step \"alloc\" at argument 1: missing operand BYTES",
            ),
            (
                &["print"][..],
                "bad step \"print\" at argument 1: missing operand BYTES",
            ),
            (
                &["read"][..],
                "bad step \"read\" at argument 1: missing operand PATH",
            ),
            (
                &["write", "p"][..],
                "bad step \"write\" at argument 1: missing operand TEXT",
            ),
            (
                &["env"][..],
                "bad step \"env\" at argument 1: missing operand NAME",
            ),
            (
                &["echo", "a", "fail-until", "p"][..],
                "bad step \"fail-until\" at argument 3: missing operand N",
            ),
            (
                &["echo"][..],
                "bad step \"echo\" at argument 1: missing operand TEXT",
            ),
            (
                &["stderr"][..],
                "bad step \"stderr\" at argument 1: missing operand TEXT",
            ),
        ] {
            assert_eq!(parse_strs(args).unwrap_err().to_string(), want, "{args:?}");
        }
    }

    #[test]
    fn invalid_operands() {
        for (args, want) in [
            (
                &["exit", "x"][..],
                "bad step \"exit\" at argument 1: N \"x\": not an integer",
            ),
            (
                &["exit", "99999999999"][..],
                "bad step \"exit\" at argument 1: N \"99999999999\": out of range (or negative)",
            ),
            (
                &["sleep", "-5"][..],
                "bad step \"sleep\" at argument 1: MS \"-5\": out of range (or negative)",
            ),
            (
                &["sleep", "1s"][..],
                "bad step \"sleep\" at argument 1: MS \"1s\": not an integer",
            ),
            (
                &["alloc", "lots"][..],
                "bad step \"alloc\" at argument 1: BYTES \"lots\": not an integer",
            ),
            (
                &["print", "-1Ki"][..],
                "bad step \"print\" at argument 1: BYTES \"-1Ki\": negative",
            ),
            (
                &["fail-until", "p", "two"][..],
                "bad step \"fail-until\" at argument 1: N \"two\": not an integer",
            ),
        ] {
            assert_eq!(parse_strs(args).unwrap_err().to_string(), want, "{args:?}");
        }
    }
}
