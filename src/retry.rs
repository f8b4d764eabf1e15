//! How the HTTP clients retry: capped exponential backoff with full jitter, a bounded number
//! of attempts, and a server's `Retry-After` honoured up to a cap.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// meshStack: ride out a backend restart (the gateway can answer 503 for minutes).
    pub fn meshstack() -> Self {
        Self {
            max_retries: 12,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }

    /// AWS APIs: back off quickly and give up sooner; the next sync converges anyway.
    pub fn aws() -> Self {
        Self {
            max_retries: 8,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// The delays between attempts; exhausted when no retry is left.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        backon::BackoffBuilder::build(
            backon::ExponentialBuilder::default()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_max_times(self.max_retries)
                .with_jitter(),
        )
    }

    /// The server's `Retry-After` (capped) when it sent one, else the backoff's delay.
    pub fn delay(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        retry_after.map_or(backoff, |d| d.min(self.max_retry_after))
    }
}

/// An error and its sources on one line, for errors whose `Display` hides the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
