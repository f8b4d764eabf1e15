//! The audit trail: for each write the executor attempts, one JSON line of intent before the
//! request and one of outcome after it (a skipped write has only the outcome), naming what
//! changed, why, for whom, AWS's request id and the outcome. Identity sync is a security
//! control; this is its record, and a write cut off between the two lines (a process killed
//! or stopped mid-request) still shows as intended, never as never tried. Without
//! `replicator.audit-log` it goes to standard output under `serve` and to standard error for
//! the CLI commands.

use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One line of the trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLine<'a> {
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub platform: &'a str,
    pub operation: &'static str,
    pub reason: crate::plan::Reason,
    pub group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<&'a str>,
    /// The userNames a membership change names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_set: Option<&'a str>,
    pub phase: Phase,
    /// Absent on an intent line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<crate::apply::Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Whether a line announces a write about to be sent, or tells how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Intent,
    Outcome,
}

/// Where a write's own-shaped audit line stands (account steps, meshIdB IAM): an intent before
/// the write, its outcome after. `result` is `None` for the intent.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub phase: Phase,
    /// Absent on an intent line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Progress {
    pub fn of<T, E: std::fmt::Display>(result: Option<&Result<T, E>>) -> Self {
        Progress {
            phase: match result {
                None => Phase::Intent,
                Some(_) => Phase::Outcome,
            },
            outcome: result.map(|r| if r.is_ok() { "done" } else { "failed" }),
            error: result
                .and_then(|r| r.as_ref().err())
                .map(ToString::to_string),
        }
    }
}

/// Where audit lines go. Each line is written whole, under a lock, so concurrent writes never
/// interleave.
#[derive(Clone)]
pub struct Audit {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        Self {
            sink: Arc::new(Mutex::new(Box::new(writer))),
        }
    }

    /// The CLI's trail without `replicator.audit-log`: its standard output is the command's
    /// result (the report, or the `--json` document), so the trail goes beside the logs.
    pub fn stderr() -> Self {
        Self::to_writer(std::io::stderr())
    }

    /// `serve`'s trail without `replicator.audit-log`: a sink of its own, apart from the logs
    /// on standard error, so a log collector can keep it separately (and longer).
    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Appends to `path`, creating it if needed.
    pub fn file(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::to_writer(file))
    }

    /// A trail kept in memory, for tests and the demo: the audit and what it has written.
    pub fn memory() -> (Self, SharedBuffer) {
        let buffer = SharedBuffer::default();
        (Self::to_writer(buffer.clone()), buffer)
    }

    pub fn discard() -> Self {
        Self::to_writer(std::io::sink())
    }

    pub fn record(&self, line: &AuditLine<'_>) {
        self.write(line);
    }

    /// Any line of the trail (the account steps have their own shape).
    pub fn write(&self, line: &impl Serialize) {
        let mut text = serde_json::to_string(line).expect("audit lines serialize");
        text.push('\n');
        let mut sink = self.sink.lock().expect("audit lock");
        // The trail must not stop a sync halfway; a failing sink is logged instead.
        if let Err(e) = sink.write_all(text.as_bytes()).and_then(|()| sink.flush()) {
            tracing::error!(error = %e, "could not write the audit line");
        }
    }
}

/// Bytes written to an in-memory [`Audit`].
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buffer lock")).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Now, as RFC 3339 in UTC.
pub fn now() -> String {
    aws_sdk_ssoadmin::primitives::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_sdk_ssoadmin::primitives::DateTimeFormat::DateTime)
        .expect("the clock is within RFC 3339's range")
}
