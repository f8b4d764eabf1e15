//! (pure) When `serve` tries an account's steps again. An account is part of its project's
//! unit of work: a step that failed (an OU that cannot be created, a stack that fails) is
//! retried with the engine's backoff and held after [`HOLD_AFTER`] failures in a row (named,
//! retried hourly); a wait for the external vending machine is polled at a pace that slows
//! down to `wait_cap`. Either way one account's trouble costs that account's requests only,
//! not one try at every run of everything. A webhook naming the project tries it at once.
//!
//! The caller passes the time in.

use crate::engine::queue::{BACKOFF_CAP, HOLD_AFTER, backoff};
use crate::model::ProjectKey;
use core::time::Duration;
use std::collections::BTreeMap;
use std::ops::Add;

#[derive(Debug, Clone)]
pub struct Retries<T> {
    waiting: BTreeMap<ProjectKey, Waiting<T>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting<T> {
    /// Tries in a row that left steps (a failure or a wait).
    pub tries: u32,
    /// Of those, the failures in a row.
    pub failures: u32,
    /// Not tried again before this, unless a person asks.
    pub next: T,
    pub error: Option<String>,
}

impl<T> Default for Retries<T> {
    fn default() -> Self {
        Retries {
            waiting: BTreeMap::new(),
        }
    }
}

impl<T: Copy + Ord + Add<Duration, Output = T>> Retries<T> {
    /// The accounts with steps left whose wait is over.
    pub fn due(&self, now: T) -> Vec<ProjectKey> {
        self.waiting
            .iter()
            .filter(|(_, w)| w.next <= now)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether `project`'s account waits (after a failure or for the vending machine) beyond
    /// `now`: a run of everything leaves it alone until then.
    pub fn backing_off(&self, project: &ProjectKey, now: T) -> bool {
        self.waiting.get(project).is_some_and(|w| w.next > now)
    }

    /// What one try of `project`'s account did: all done, steps left to wait for (`error`
    /// `None`), or a failure. Returns the failures in a row when this one held it.
    pub fn settle(
        &mut self,
        project: &ProjectKey,
        left: bool,
        error: Option<&str>,
        now: T,
        wait_cap: Duration,
    ) -> Option<u32> {
        if !left && error.is_none() {
            self.waiting.remove(project);
            return None;
        }
        let w = self.waiting.entry(project.clone()).or_insert(Waiting {
            tries: 0,
            failures: 0,
            next: now,
            error: None,
        });
        w.tries += 1;
        match error {
            Some(error) => {
                w.failures += 1;
                w.error = Some(error.to_owned());
                let wait = if w.failures >= HOLD_AFTER {
                    BACKOFF_CAP
                } else {
                    backoff(w.failures)
                };
                w.next = now + wait;
                (w.failures == HOLD_AFTER).then_some(w.failures)
            }
            None => {
                w.failures = 0;
                w.error = None;
                w.next = now + backoff(w.tries).min(wait_cap);
                None
            }
        }
    }

    /// The accounts whose last try failed, with the failures in a row and the last error.
    pub fn failing(&self) -> Vec<(ProjectKey, u32, String)> {
        self.waiting
            .iter()
            .filter(|(_, w)| w.failures > 0)
            .map(|(p, w)| (p.clone(), w.failures, w.error.clone().unwrap_or_default()))
            .collect()
    }

    /// The accounts held: failed [`HOLD_AFTER`] times in a row, with the last error.
    pub fn held(&self) -> Vec<(ProjectKey, u32, String)> {
        self.waiting
            .iter()
            .filter(|(_, w)| w.failures >= HOLD_AFTER)
            .map(|(p, w)| (p.clone(), w.failures, w.error.clone().unwrap_or_default()))
            .collect()
    }

    pub fn get(&self, project: &ProjectKey) -> Option<&Waiting<T>> {
        self.waiting.get(project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(900);

    fn key(p: &str) -> ProjectKey {
        ProjectKey::new("acme", p)
    }

    #[test]
    fn a_failing_account_backs_off_is_held_after_five_and_done_forgets_it() {
        let mut r = Retries::default();
        let t0 = Duration::ZERO;
        let web = key("web");
        assert_eq!(r.settle(&web, true, Some("OU refused"), t0, CAP), None);
        assert!(r.backing_off(&web, t0));
        assert!(r.due(t0).is_empty());
        assert_eq!(r.due(t0 + Duration::from_secs(5)), vec![web.clone()]);
        let mut now = t0;
        for n in 2..=5 {
            now = r.get(&web).unwrap().next;
            let held = r.settle(&web, true, Some("OU refused"), now, CAP);
            assert_eq!(held, (n == 5).then_some(5), "try {n}");
        }
        assert_eq!(r.held(), vec![(web.clone(), 5, "OU refused".to_owned())]);
        assert_eq!(
            r.get(&web).unwrap().next,
            now + BACKOFF_CAP,
            "hourly once held"
        );
        r.settle(&web, false, None, now, CAP);
        assert!(r.held().is_empty() && r.due(now + BACKOFF_CAP).is_empty());
    }

    #[test]
    fn a_vending_machine_wait_is_polled_ever_more_slowly_up_to_the_cap_and_never_held() {
        let mut r = Retries::default();
        let web = key("web");
        let mut now = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..12 {
            assert_eq!(r.settle(&web, true, None, now, CAP), None);
            let next = r.get(&web).unwrap().next;
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(&waits[..4], &[5, 10, 20, 40]);
        assert_eq!(*waits.last().unwrap(), 900);
        assert!(r.held().is_empty());
        // A failure after waits starts its own backoff.
        r.settle(&web, true, Some("stack failed"), now, CAP);
        assert_eq!(r.get(&web).unwrap().next, now + Duration::from_secs(5));
    }
}
