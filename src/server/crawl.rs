//! The meshStack crawl (`meshstack::crawl` holds its state): one task per process, leader or
//! not. Each cycle reads the listings, confirms by a point read each project (or tenant) the
//! listing lost, then the bindings of [`TICK`] projects at a time, paced to spread the cycle
//! over `schedule.interval-seconds` within [`SHARE`] of meshStack's rate. The leader plans
//! from what it has read: a tick that found a change queues a run of everything at once (it
//! costs no meshStack request: the run takes the crawl's estate), and so does the end of
//! each cycle. A follower takes the same estate for its warm desired state. A failed read is
//! retried with backoff where it failed; nothing read so far is dropped.

use super::Service;
use super::runs::Trigger;
use crate::meshstack::crawl::{SHARE, TICK, by_project};
use crate::meshstack::{Client, Listings, MeshStackError};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the age of the oldest read is refreshed while the crawl waits.
const GAUGE: Duration = Duration::from_secs(5);

pub async fn crawl(service: Arc<Service>, client: Arc<Client>) {
    let config = &service.config;
    let interval = Duration::from_secs(config.replicator.schedule.interval_seconds);
    let expand = config.meshstack.expand_group_bindings;
    let rate = config.replicator.rate_limits.meshstack;
    let kinds = if expand { 2 } else { 1 };
    let mut failures = 0u32;
    loop {
        let first = !service.crawl().whole();
        let started = Instant::now();
        let listings = match listings(&service, &client).await {
            Ok(listings) => listings,
            Err(error) => {
                failures += 1;
                wait_after_failure(&service, failures, interval, &error).await;
                continue;
            }
        };
        failures = 0;
        let requests =
            crate::meshstack::crawl::requests(&listings, config.meshstack.page_size, expand);
        let estimate = crate::meshstack::crawl::cycle_seconds(
            requests,
            rate,
            config.replicator.schedule.interval_seconds,
        );
        service.metrics.record_crawl_estimate(estimate);
        service.set_crawl_cycle(estimate);
        service.crawl().begin(listings, started);
        let total = service.crawl().left().max(1);
        let mut done = 0usize;
        loop {
            let next = service.crawl().next(TICK);
            if next.is_empty() {
                break;
            }
            let tick = Instant::now();
            let read = crate::meshstack::read_bindings(&client, next.iter(), expand).await;
            let bindings = match read {
                Ok(bindings) => bindings,
                Err(error) => {
                    failures += 1;
                    wait_after_failure(&service, failures, interval, &error).await;
                    continue;
                }
            };
            failures = 0;
            let changed = {
                let mut crawl = service.crawl();
                for (project, bindings) in by_project(next.clone(), bindings) {
                    crawl.read(&project, bindings, tick);
                }
                crawl.whole() && crawl.changed()
            };
            done += next.len();
            service.record_crawl_age();
            if first {
                // Nothing is planned before the estate is whole; the first cycle goes at the
                // full rate.
                continue;
            }
            if changed {
                tracing::debug!("meshStack crawl: a change found; a run of everything queued");
                service.crawled(Trigger::Crawl);
            }
            let least = Duration::from_secs_f64((next.len() * kinds) as f64 / (SHARE * rate));
            let due = started + interval.mul_f64(done as f64 / total as f64);
            pause_until((tick + least).max(due), &service).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        service.metrics.record_crawl_cycle(seconds);
        let projects = service.crawl().projects();
        tracing::debug!(
            projects,
            seconds = (seconds * 100.0).round() / 100.0,
            "meshStack crawl: a cycle done"
        );
        service.crawled(if first {
            Trigger::Startup
        } else {
            Trigger::Schedule
        });
        let jitter = super::jitter(config.replicator.schedule.jitter_seconds);
        pause_until(started + interval + Duration::from_secs(jitter), &service).await;
    }
}

/// This cycle's listings, with every project and tenant the last cycle had and these lack
/// read on its own: one meshStack still has is kept (the listing shifted under its paging).
pub async fn listings(service: &Service, client: &Client) -> Result<Listings, MeshStackError> {
    let mut listings = crate::meshstack::read_listings(client, &service.config).await?;
    let (unlisted, untenanted) = {
        let crawl = service.crawl();
        (crawl.unlisted(&listings), crawl.untenanted(&listings))
    };
    if !unlisted.is_empty() {
        let live = crate::meshstack::still_there(client, &unlisted).await?;
        if !live.is_empty() {
            tracing::warn!(
                projects = %live.iter().map(|p| p.key().to_string()).collect::<Vec<_>>().join(", "),
                "meshStack's project listing lacked projects a point read finds (its paging shifted); they are kept"
            );
        }
        for project in live {
            listings.projects.insert(project.key(), project);
        }
    }
    let mut untenanted = untenanted;
    untenanted.extend(
        unlisted
            .into_iter()
            .filter(|k| listings.projects.contains_key(k)),
    );
    for project in untenanted {
        if let Some(tenant) =
            crate::meshstack::read_tenant(client, &service.config, &project).await?
        {
            listings.tenants.insert(project, tenant);
        }
    }
    Ok(listings)
}

async fn wait_after_failure(
    service: &Service,
    failures: u32,
    interval: Duration,
    error: &MeshStackError,
) {
    let wait = crate::engine::queue::backoff(failures).min(interval);
    tracing::warn!(
        %error,
        failures,
        retry_in_seconds = wait.as_secs(),
        "reading meshStack failed; trying again where it stopped"
    );
    pause_until(Instant::now() + wait, service).await;
}

/// Sleeps until `at`, keeping the age of the oldest read current for the alert meanwhile.
async fn pause_until(at: Instant, service: &Service) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        tokio::time::sleep((at - now).min(GAUGE)).await;
        service.record_crawl_age();
    }
}
