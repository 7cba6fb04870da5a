//! `log`: a call's log lines, from `log!` and from what the guest prints
//! (`println!` and `eprintln!` go to WASI pipes read here), returned with
//! its result.

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::bindings::capstan::runtime::log;
use crate::state::CallState;

/// The call's log lines in the order they were produced: `println!` and
/// `eprintln!` output (read from the WASI pipes whenever the guest logs, so
/// the two sources interleave correctly) and `log!` lines.
pub struct LogLines {
    pub(crate) lines: Vec<String>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_read: usize,
    stderr_read: usize,
    max_lines: usize,
    max_line: usize,
    dropped: usize,
}

impl std::fmt::Debug for LogLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLines")
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl LogLines {
    pub(crate) fn new(
        stdout: MemoryOutputPipe,
        stderr: MemoryOutputPipe,
        max_lines: usize,
        max_line: usize,
    ) -> Self {
        LogLines {
            lines: Vec::new(),
            stdout,
            stderr,
            stdout_read: 0,
            stderr_read: 0,
            max_lines,
            max_line,
            dropped: 0,
        }
    }

    fn push(&mut self, level: &str, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let mut line = format!("[{level}] {message}");
        if line.len() > self.max_line {
            let mut cut = self.max_line;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" (truncated due to length)");
        }
        self.lines.push(line);
    }

    /// Moves what the guest printed since the last drain into lines.
    pub(crate) fn drain_output(&mut self) {
        let contents = self.stdout.contents();
        let fresh =
            String::from_utf8_lossy(&contents[self.stdout_read.min(contents.len())..]).into_owned();
        self.stdout_read = contents.len();
        for line in fresh.lines() {
            self.push("LOG", line);
        }
        let contents = self.stderr.contents();
        let fresh =
            String::from_utf8_lossy(&contents[self.stderr_read.min(contents.len())..]).into_owned();
        self.stderr_read = contents.len();
        for line in fresh.lines() {
            self.push("ERROR", line);
        }
    }

    /// All lines, with a note when some were dropped.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.drain_output();
        if self.dropped > 0 {
            let note = format!(
                "[WARN] {} more log lines were dropped (limit {})",
                self.dropped, self.max_lines
            );
            self.lines.push(note);
        }
        self.lines
    }

    /// What the guest wrote to stderr, for a panic message.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.logs.drain_output();
        let level = match level {
            log::Level::Debug => "DEBUG",
            log::Level::Info => "INFO",
            log::Level::Log => "LOG",
            log::Level::Warn => "WARN",
            log::Level::Error => "ERROR",
        };
        self.logs.push(level, &message);
        Ok(())
    }
}
