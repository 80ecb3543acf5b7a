//! Joining the lines of one stack trace into one record: Java (`\tat ...`, `Caused by:`, `... N more`),
//! Python (`Traceback (most recent call last):` ... `XError: msg`), Go (`panic:` / `goroutine N [...]:` and
//! the frames after it), or lines after a custom start pattern.
//!
//! Only lines that can begin a trace are held back waiting for continuation lines; any other line is
//! passed on at once, so ordinary logs see no delay.

use memchr::memmem;
use regex::Regex;
use std::fmt;
use std::str::FromStr;

/// Which stack traces to join.
#[derive(Debug, Clone)]
pub enum MultilineMode {
    /// Java (and JVM languages) exceptions.
    Java,
    /// Python tracebacks.
    Python,
    /// Go panics and goroutine dumps.
    Go,
    /// Java, Python and Go together.
    Auto,
    /// A line matching the pattern starts a record; following non-matching lines join it.
    Custom(Regex),
}

/// Multi-line joining settings for container messages and text lines.
#[derive(Debug, Clone)]
pub struct Multiline {
    /// What to join.
    pub mode: MultilineMode,
}

/// A multi-line setting that could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MultilineError {
    /// An unknown mode name.
    #[error("unknown multiline mode {0:?}: expected java, python, go, auto or custom:<regex>")]
    UnknownMode(String),
    /// A custom start pattern that is not a valid regular expression.
    #[error("invalid multiline start pattern: {0}")]
    BadPattern(String),
}

impl Multiline {
    /// Joining of the given kind.
    pub fn new(mode: MultilineMode) -> Multiline {
        Multiline { mode }
    }

    /// Joining after lines that match `start` (a regular expression).
    pub fn custom(start: &str) -> Result<Multiline, MultilineError> {
        Regex::new(start)
            .map(|r| Multiline::new(MultilineMode::Custom(r)))
            .map_err(|e| MultilineError::BadPattern(e.to_string()))
    }
}

impl FromStr for Multiline {
    type Err = MultilineError;
    /// `java`, `python`, `go`, `auto`, or `custom:<regex>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("custom:") {
            return Multiline::custom(p);
        }
        let mode = match s.to_ascii_lowercase().as_str() {
            "java" => MultilineMode::Java,
            "python" => MultilineMode::Python,
            "go" => MultilineMode::Go,
            "auto" => MultilineMode::Auto,
            _ => return Err(MultilineError::UnknownMode(s.to_string())),
        };
        Ok(Multiline::new(mode))
    }
}

impl fmt::Display for Multiline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            MultilineMode::Java => f.write_str("java"),
            MultilineMode::Python => f.write_str("python"),
            MultilineMode::Go => f.write_str("go"),
            MultilineMode::Auto => f.write_str("auto"),
            MultilineMode::Custom(r) => write!(f, "custom:{}", r.as_str()),
        }
    }
}

/// Where a stream is inside a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum State {
    #[default]
    Idle,
    Java,
    Python,
    /// After the final `XError: msg` line of a traceback.
    PyAfterExc,
    /// Blank lines after a traceback (a chained exception may follow).
    PyBlank,
    Go,
    Custom,
}

/// What to do with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Append it to the record being held.
    Join,
    /// Flush the held record; hold this line as the start of a new one.
    Start,
    /// Flush the held record; pass this line on by itself.
    Single,
}

fn starts_ws(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b' ' | b'\t'))
}

fn java_start(line: &str) -> bool {
    let b = line.as_bytes();
    memmem::find(b, b"Exception").is_some()
        || memmem::find(b, b"Error").is_some()
        || memmem::find(b, b"Throwable").is_some()
}

fn java_cont(line: &str) -> bool {
    let t = line.trim_start_matches([' ', '\t']);
    (starts_ws(line) && (t.starts_with("at ") || t.starts_with("...")))
        || t.starts_with("Caused by:")
        || t.starts_with("Suppressed:")
        || t.starts_with("nested exception is")
        || (t.starts_with("... ") && (t.ends_with(" more") || t.contains("common frames omitted")))
}

const PY_START: &str = "Traceback (most recent call last):";
const PY_CHAIN: [&str; 2] = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

fn py_start(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).starts_with(PY_START)
}

fn go_start(line: &str) -> bool {
    line.starts_with("panic: ")
        || line.starts_with("fatal error: ")
        || (line.starts_with("goroutine ") && line.ends_with("]:"))
}

fn go_cont(line: &str) -> bool {
    if line.is_empty() || starts_ws(line) {
        return true;
    }
    if line.starts_with("goroutine ")
        || line.starts_with("created by ")
        || line.starts_with("[signal ")
        || line.starts_with("exit status ")
        || line.starts_with("runtime stack:")
        || line.starts_with("...additional frames elided...")
        || line.starts_with("panic: ")
    {
        return true;
    }
    // a frame: `pkg.fn(args)` with no space before the parenthesis
    match line.find('(') {
        Some(p) => p > 0 && !line[..p].contains(' ') && line.ends_with(')'),
        None => false,
    }
}

/// Decides what to do with `line` in `state`; returns the decision and the next state.
pub(crate) fn decide(mode: &MultilineMode, state: State, line: &str) -> (Decision, State) {
    use Decision::*;
    match state {
        State::Java if java_cont(line) => return (Join, State::Java),
        State::Python => {
            if line.is_empty()
                || starts_ws(line)
                || line.starts_with(PY_START)
                || PY_CHAIN.contains(&line)
            {
                return (Join, State::Python);
            }
            return (Join, State::PyAfterExc);
        }
        State::PyAfterExc | State::PyBlank => {
            if line.trim().is_empty() {
                return (Join, State::PyBlank);
            }
            if state == State::PyBlank
                && (PY_CHAIN.contains(&line.trim_end()) || line.starts_with(PY_START))
            {
                return (Join, State::Python);
            }
        }
        State::Go if go_cont(line) => return (Join, State::Go),
        State::Custom => {
            if let MultilineMode::Custom(re) = mode {
                if !re.is_match(line) {
                    return (Join, State::Custom);
                }
            }
        }
        _ => {}
    }
    let (py, go, java) = match mode {
        MultilineMode::Java => (false, false, true),
        MultilineMode::Python => (true, false, false),
        MultilineMode::Go => (false, true, false),
        MultilineMode::Auto => (true, true, true),
        MultilineMode::Custom(re) => {
            return if re.is_match(line) {
                (Start, State::Custom)
            } else {
                (Single, State::Idle)
            };
        }
    };
    if py && py_start(line) {
        (Start, State::Python)
    } else if go && go_start(line) {
        (Start, State::Go)
    } else if java && java_start(line) {
        (Start, State::Java)
    } else {
        (Single, State::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the machine over lines and returns the records as joined strings.
    pub(crate) fn run(mode: &MultilineMode, lines: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut held: Option<String> = None;
        let mut st = State::Idle;
        for l in lines {
            let (d, next) = decide(mode, st, l);
            st = next;
            match d {
                Decision::Join => match held.as_mut() {
                    Some(h) => {
                        h.push('\n');
                        h.push_str(l);
                    }
                    None => out.push(l.to_string()),
                },
                Decision::Start => {
                    out.extend(held.take());
                    held = Some(l.to_string());
                }
                Decision::Single => {
                    out.extend(held.take());
                    out.push(l.to_string());
                }
            }
        }
        out.extend(held);
        out
    }

    #[test]
    fn java() {
        let lines = [
            "starting up",
            "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            "\tat com.example.App.run(App.java:10)",
            "\tat com.example.App.main(App.java:3)",
            "Caused by: java.lang.NullPointerException",
            "\tat com.example.Dao.get(Dao.java:22)",
            "\t... 2 more",
            "next line",
        ];
        let got = run(&MultilineMode::Java, &lines);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1], lines[1..7].join("\n"));
        assert_eq!(got[2], "next line");
    }

    #[test]
    fn python_with_chain() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"a.py\", line 1, in <module>",
            "    f()",
            "KeyError: 'x'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 3, in <module>",
            "ValueError: bad",
            "INFO done",
        ];
        let got = run(&MultilineMode::Python, &lines);
        assert_eq!(got, vec![lines[..10].join("\n"), "INFO done".to_string()]);
    }

    #[test]
    fn go_panic() {
        let lines = [
            "panic: my panic",
            "",
            "goroutine 4 [running]:",
            "panic(0x45cb40, 0x47ad70)",
            "\t/usr/local/go/src/runtime/panic.go:542 +0x46c",
            "main.main.func1(0xc420024120)",
            "\tfoo.go:6 +0x39",
            "created by main.main",
            "\tfoo.go:5 +0x58",
            "exit status 2",
            "one more line, no multiline",
        ];
        let got = run(&MultilineMode::Go, &lines);
        assert_eq!(got, vec![lines[..10].join("\n"), lines[10].to_string()]);
        // Auto handles all three
        let got = run(&MultilineMode::Auto, &lines);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn custom_start() {
        let ml = Multiline::custom(r"^\[DEBUG\]").unwrap();
        let lines = [
            "lonely",
            "[DEBUG] 1 start",
            "1 cont A",
            "[DEBUG] 2 start",
            "2 cont B",
        ];
        let got = run(&ml.mode, &lines);
        assert_eq!(
            got,
            vec![
                "lonely",
                "[DEBUG] 1 start\n1 cont A",
                "[DEBUG] 2 start\n2 cont B"
            ]
        );
        assert!(Multiline::custom("(").is_err());
        assert!("nope".parse::<Multiline>().is_err());
        assert_eq!(
            "custom:^x".parse::<Multiline>().unwrap().to_string(),
            "custom:^x"
        );
        assert_eq!("Java".parse::<Multiline>().unwrap().to_string(), "java");
    }

    #[test]
    fn plain_lines_are_not_held() {
        assert_eq!(
            decide(&MultilineMode::Auto, State::Idle, "GET / 200").0,
            Decision::Single
        );
        assert_eq!(
            decide(&MultilineMode::Java, State::Idle, "\tat x.y(Z.java:1)").0,
            Decision::Single
        );
    }
}
