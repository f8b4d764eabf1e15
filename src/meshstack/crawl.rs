//! (pure) meshStack read project by project. Bindings can be listed only per project, so a read
//! of the whole estate costs a request (two with group bindings) per project: at 10,000
//! projects and meshStack's default 10 requests a second, longer than the schedule's interval.
//! `serve` therefore crawls: each cycle takes the cheap listings (projects, tenants, users,
//! user groups, roles: a few pages each) once, then the bindings of a few projects per tick,
//! paced to spread one cycle over the interval within [`SHARE`] of meshStack's rate. The
//! estate as last read (this cycle's listings, each project's latest bindings) is what a run
//! of everything plans from; a tick that finds a change hands it on at once, so that a change
//! reaches AWS within one cycle without a webhook and no run waits for a read of everything.
//!
//! Nothing here reads a clock: the caller passes the time in.

use super::Listings;
use crate::model::{ProjectKey, WorkspaceId};
use crate::snapshot::{Binding, Project, Snapshot, Tenant, User, UserGroup};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The share of `replicator.rate-limits.meshstack` the crawl spends once its first cycle is
/// done (that one goes at the full rate: nothing is reconciled before it ends). The rest is
/// for webhooks' scoped reads and the point reads that confirm a deletion.
pub const SHARE: f64 = 0.75;

/// Projects whose bindings one tick reads.
pub const TICK: usize = 20;

/// What the crawl knows of meshStack.
#[derive(Debug, Clone)]
pub struct Crawl<T> {
    listings: Option<Listings>,
    bindings: BTreeMap<ProjectKey, Read<T>>,
    /// This cycle's projects still to read: those never read first, then the rest in key order.
    todo: VecDeque<ProjectKey>,
    /// Something differs from the estate last handed on.
    changed: bool,
    /// What scoped reads (webhooks) found, kept over a listing that began before them: an
    /// older answer must not undo a newer one.
    merged: Merged<T>,
}

#[derive(Debug, Clone)]
struct Merged<T> {
    projects: BTreeMap<ProjectKey, (T, Option<Project>, Option<Tenant>)>,
    users: BTreeMap<String, (T, User)>,
    groups: BTreeMap<(WorkspaceId, String), (T, UserGroup)>,
}

impl<T> Default for Merged<T> {
    fn default() -> Self {
        Merged {
            projects: BTreeMap::new(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

impl<T> Merged<T> {
    fn apply(&self, listings: &mut Listings) {
        for (key, (_, project, tenant)) in &self.projects {
            match project {
                Some(p) => listings.projects.insert(key.clone(), p.clone()),
                None => listings.projects.remove(key),
            };
            match tenant {
                Some(t) => listings.tenants.insert(key.clone(), t.clone()),
                None => listings.tenants.remove(key),
            };
        }
        for (name, (_, user)) in &self.users {
            listings.users.insert(name.clone(), user.clone());
        }
        for (key, (_, group)) in &self.groups {
            listings.groups.insert(key.clone(), group.clone());
        }
    }
}

#[derive(Debug, Clone)]
struct Read<T> {
    bindings: Vec<Binding>,
    at: T,
}

impl<T: Copy + Ord> Default for Crawl<T> {
    fn default() -> Self {
        Crawl {
            listings: None,
            bindings: BTreeMap::new(),
            todo: VecDeque::new(),
            changed: false,
            merged: Merged::default(),
        }
    }
}

impl<T: Copy + Ord> Crawl<T> {
    /// The projects the last cycle listed that `listings` lacks. Offset paging skips a live
    /// project when another is deleted while the listing is read, and the listing still
    /// counts whole: each is read on its own before it is taken as gone.
    pub fn unlisted(&self, listings: &Listings) -> Vec<ProjectKey> {
        let Some(last) = &self.listings else {
            return Vec::new();
        };
        last.projects
            .keys()
            .filter(|k| !listings.projects.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The projects still listed whose tenant here the last cycle listed and `listings` lacks
    /// (the same paging hazard, in the tenants' listing).
    pub fn untenanted(&self, listings: &Listings) -> Vec<ProjectKey> {
        let Some(last) = &self.listings else {
            return Vec::new();
        };
        last.tenants
            .keys()
            .filter(|k| listings.projects.contains_key(*k) && !listings.tenants.contains_key(*k))
            .cloned()
            .collect()
    }

    /// A cycle begins with `listings` (completed by the point reads above), whose read began
    /// at `since`: what scoped reads found after that stays. Returns whether they differ from
    /// the last cycle's.
    pub fn begin(&mut self, mut listings: Listings, since: T) -> bool {
        self.merged.projects.retain(|_, (at, ..)| *at > since);
        self.merged.users.retain(|_, (at, _)| *at > since);
        self.merged.groups.retain(|_, (at, _)| *at > since);
        self.merged.apply(&mut listings);
        let to_read: BTreeSet<ProjectKey> = listings.to_read().into_iter().collect();
        self.bindings.retain(|k, _| to_read.contains(k));
        let (never, again): (Vec<ProjectKey>, Vec<ProjectKey>) = to_read
            .into_iter()
            .partition(|k| !self.bindings.contains_key(k));
        self.todo = never.into_iter().chain(again).collect();
        let changed = self.listings.as_ref() != Some(&listings);
        self.listings = Some(listings);
        self.changed |= changed;
        changed
    }

    /// A read of everything (an unscoped webhook) that began at `since`: the listings and
    /// every project's bindings at once; this cycle has nothing left to read.
    pub fn refresh(&mut self, listings: Listings, bindings: Vec<Binding>, since: T) {
        self.begin(listings, since);
        for (project, of) in by_project(self.next(usize::MAX), bindings) {
            self.read(&project, of, since);
        }
    }

    /// What a scoped read that began at `since` found for `projects`: taken into the estate
    /// (and kept over a listing or tick that began before it), so that a run of everything
    /// does not undo what the webhook applied.
    pub fn merge(&mut self, snapshot: &Snapshot, projects: &BTreeSet<ProjectKey>, since: T) {
        let mut merged = Merged::default();
        for key in projects {
            let project = snapshot.projects.iter().find(|p| p.key() == *key).cloned();
            let tenant = snapshot.tenants.iter().find(|t| t.key() == *key).cloned();
            merged
                .projects
                .insert(key.clone(), (since, project, tenant));
        }
        for user in &snapshot.users {
            merged
                .users
                .insert(user.username.to_string(), (since, user.clone()));
        }
        for group in &snapshot.groups {
            let key = (group.workspace.clone(), group.identifier.clone());
            merged.groups.insert(key, (since, group.clone()));
        }
        if let Some(listings) = &mut self.listings {
            merged.apply(listings);
            if !snapshot.roles.is_empty() {
                listings.roles = snapshot.roles.clone();
            }
        }
        let to_read: BTreeSet<ProjectKey> = self
            .listings
            .as_ref()
            .map(|l| l.to_read().into_iter().collect())
            .unwrap_or_default();
        let of_scope = snapshot
            .bindings
            .iter()
            .filter(|b| projects.contains(&ProjectKey::new(b.workspace.clone(), b.project.clone())))
            .cloned()
            .collect();
        for (project, of) in by_project(projects.iter().cloned().collect(), of_scope) {
            if to_read.contains(&project) || self.listings.is_none() {
                self.read(&project, of, since);
            } else {
                self.bindings.remove(&project);
                self.todo.retain(|k| *k != project);
            }
        }
        self.merged.projects.extend(merged.projects);
        self.merged.users.extend(merged.users);
        self.merged.groups.extend(merged.groups);
        self.changed = true;
    }

    /// Up to `n` projects whose bindings to read next.
    pub fn next(&self, n: usize) -> Vec<ProjectKey> {
        self.todo.iter().take(n).cloned().collect()
    }

    /// This cycle's projects not read yet.
    pub fn left(&self) -> usize {
        self.todo.len()
    }

    /// The projects a cycle reads the bindings of.
    pub fn projects(&self) -> usize {
        self.listings.as_ref().map_or(0, |l| l.to_read().len())
    }

    /// `project`'s bindings as read by a request that began at `since`; a read that began
    /// after it was taken already wins. Returns whether they differ from its last read.
    pub fn read(&mut self, project: &ProjectKey, bindings: Vec<Binding>, since: T) -> bool {
        if let Some(at) = self.todo.iter().position(|k| k == project) {
            self.todo.remove(at);
        }
        let last = self.bindings.get(project);
        if last.is_some_and(|r| r.at > since) {
            return false;
        }
        let changed = last.is_none_or(|r| r.bindings != bindings);
        self.bindings.insert(
            project.clone(),
            Read {
                bindings,
                at: since,
            },
        );
        self.changed |= changed;
        changed
    }

    /// Whether this cycle's projects were all read.
    pub fn cycle_done(&self) -> bool {
        self.listings.is_some() && self.todo.is_empty()
    }

    /// Whether the estate differs from the one last handed on by [`Crawl::snapshot`].
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The estate as last read: this cycle's listings and each project's latest bindings.
    /// `None` until every project listed has had its bindings read once: a project taken
    /// without them would lose every member.
    pub fn snapshot(&mut self, platform: &str) -> Option<Snapshot> {
        let listings = self.listings.as_ref()?;
        let mut bindings = Vec::new();
        for key in listings.to_read() {
            bindings.extend(self.bindings.get(&key)?.bindings.iter().cloned());
        }
        self.changed = false;
        Some(listings.snapshot(platform, bindings))
    }

    /// Whether [`Crawl::snapshot`] has an estate to give.
    pub fn whole(&self) -> bool {
        self.listings
            .as_ref()
            .is_some_and(|l| l.to_read().iter().all(|k| self.bindings.contains_key(k)))
    }

    /// When the least recently read project's bindings were read; `None` before the estate
    /// is whole.
    pub fn oldest_read(&self) -> Option<T> {
        if !self.whole() {
            return None;
        }
        self.bindings.values().map(|r| r.at).min()
    }
}

/// `bindings` by project, with an empty list for each of `projects` that has none.
pub fn by_project(
    projects: Vec<ProjectKey>,
    bindings: Vec<Binding>,
) -> BTreeMap<ProjectKey, Vec<Binding>> {
    let mut out: BTreeMap<ProjectKey, Vec<Binding>> =
        projects.into_iter().map(|k| (k, Vec::new())).collect();
    for b in bindings {
        let key = ProjectKey::new(b.workspace.clone(), b.project.clone());
        if let Some(of) = out.get_mut(&key) {
            of.push(b);
        }
    }
    out
}

/// The requests one cycle makes: a page per `page_size` items of each listing (at least one),
/// and a request per project (two with group bindings).
pub fn requests(listings: &Listings, page_size: u32, expand: bool) -> u64 {
    let pages = |n: usize| (n as u64).div_ceil(u64::from(page_size.max(1))).max(1);
    let mut requests = pages(listings.roles.len())
        + pages(listings.projects.len())
        + pages(listings.tenants.len())
        + pages(listings.users.len());
    if expand {
        requests += pages(listings.groups.len());
    }
    let kinds = if expand { 2 } else { 1 };
    requests + kinds * listings.to_read().len() as u64
}

/// How long one cycle of `requests` takes: the interval, or longer when meshStack's rate at
/// [`SHARE`] cannot read the estate within it.
pub fn cycle_seconds(requests: u64, rate: f64, interval_seconds: u64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    (requests as f64 / (SHARE * rate)).max(interval_seconds as f64)
}

/// What `serve`'s crawl of `snapshot`'s estate costs, for `plan`.
pub fn describe(snapshot: &Snapshot, config: &crate::config::Config) -> String {
    let listings = Listings::of(snapshot);
    let expand = config.meshstack.expand_group_bindings;
    let requests = requests(&listings, config.meshstack.page_size, expand);
    let rate = config.replicator.rate_limits.meshstack;
    let interval = config.replicator.schedule.interval_seconds;
    let seconds = cycle_seconds(requests, rate, interval);
    format!(
        "serve's meshStack crawl (a cycle every schedule.interval-seconds, or as long as {} % of rate-limits.meshstack needs): {} project(s), {requests} meshStack requests, {} per cycle{}",
        SHARE * 100.0,
        listings.to_read().len(),
        crate::scan::human(seconds),
        if seconds > interval as f64 {
            " (longer than the interval: a change made without a webhook takes up to this to reach AWS)"
        } else {
            ""
        }
    )
}

/// A cycle's length for an estate of `projects` projects shaped as usual (a user per three
/// bindings), for `plan` and `config check` before meshStack is read.
pub fn cycle_of_shape(
    projects: usize,
    page_size: u32,
    expand: bool,
    rate: f64,
    interval_seconds: u64,
) -> f64 {
    let pages = |n: usize| (n as u64).div_ceil(u64::from(page_size.max(1))).max(1);
    let kinds = if expand { 2 } else { 1 };
    let requests =
        1 + 2 * pages(projects) + pages(projects * 3) + if expand { pages(projects) } else { 0 };
    cycle_seconds(requests + kinds * projects as u64, rate, interval_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Project, Subject, Tenant};

    fn key(k: &str) -> ProjectKey {
        let (workspace, project) = k.split_once('.').expect("workspace.project");
        ProjectKey::new(workspace, project)
    }

    fn listings(projects: &[&str]) -> Listings {
        let mut l = Listings::default();
        for p in projects {
            let k = key(p);
            l.projects.insert(
                k.clone(),
                Project {
                    workspace: k.workspace.clone(),
                    identifier: k.project.clone(),
                    tags: BTreeMap::new(),
                },
            );
            l.tenants.insert(
                k.clone(),
                Tenant {
                    workspace: k.workspace.clone(),
                    project: k.project.clone(),
                    account_id: None,
                    landing_zone: None,
                },
            );
        }
        l
    }

    fn binding(p: &str, user: &str) -> Binding {
        let k = key(p);
        Binding {
            workspace: k.workspace,
            project: k.project,
            role: "Project Admin".into(),
            subject: Subject::User(user.into()),
        }
    }

    fn read_all(crawl: &mut Crawl<u32>, now: u32) {
        while !crawl.cycle_done() {
            for k in crawl.next(1) {
                let b = vec![binding(&k.to_string(), "ann")];
                crawl.read(&k, b, now);
            }
        }
    }

    #[test]
    fn no_estate_until_every_listed_project_was_read_once() {
        let mut crawl = Crawl::default();
        assert!(crawl.snapshot("p").is_none());
        crawl.begin(listings(&["a.x", "a.y"]), 0);
        crawl.read(&key("a.x"), vec![binding("a.x", "ann")], 1);
        assert!(crawl.snapshot("p").is_none(), "a.y was never read");
        assert_eq!(crawl.oldest_read(), None);
        crawl.read(&key("a.y"), vec![], 2);
        let snapshot = crawl.snapshot("p").expect("whole");
        assert_eq!(snapshot.bindings, vec![binding("a.x", "ann")]);
        assert_eq!(crawl.oldest_read(), Some(1));
    }

    #[test]
    fn a_new_project_is_read_first_and_the_estate_stays_whole_meanwhile_only_after_it() {
        let mut crawl = Crawl::default();
        crawl.begin(listings(&["a.x", "a.y"]), 0);
        read_all(&mut crawl, 1);
        assert!(crawl.snapshot("p").is_some());
        assert!(crawl.begin(listings(&["a.x", "a.y", "b.new"]), 0));
        assert_eq!(crawl.next(3), vec![key("b.new"), key("a.x"), key("a.y")]);
        assert!(crawl.snapshot("p").is_none(), "b.new has no bindings yet");
        crawl.read(&key("b.new"), vec![], 2);
        assert!(crawl.snapshot("p").is_some());
    }

    #[test]
    fn only_a_read_that_differs_counts_as_a_change() {
        let mut crawl = Crawl::default();
        crawl.begin(listings(&["a.x"]), 0);
        read_all(&mut crawl, 1);
        crawl.snapshot("p");
        assert!(!crawl.begin(listings(&["a.x"]), 0), "same listings");
        assert!(!crawl.read(&key("a.x"), vec![binding("a.x", "ann")], 2));
        assert!(!crawl.changed());
        crawl.begin(listings(&["a.x"]), 0);
        assert!(crawl.read(&key("a.x"), vec![binding("a.x", "bob")], 3));
        assert!(crawl.changed());
        crawl.snapshot("p");
        assert!(!crawl.changed());
    }

    #[test]
    fn a_scoped_read_is_kept_over_an_older_listing_and_an_older_tick() {
        let mut crawl = Crawl::default();
        crawl.begin(listings(&["a.x", "a.y"]), 0);
        read_all(&mut crawl, 1);
        // A webhook at 5: a.x has bob now, and a.y lost its tenant.
        let mut scoped = listings(&["a.x", "a.y"]).snapshot("p", vec![binding("a.x", "bob")]);
        scoped.tenants.retain(|t| t.key() != key("a.y"));
        let scope: BTreeSet<ProjectKey> = [key("a.x"), key("a.y")].into();
        crawl.merge(&scoped, &scope, 5);
        let bound = |crawl: &mut Crawl<u32>| crawl.snapshot("p").expect("whole").bindings;
        assert_eq!(bound(&mut crawl), vec![binding("a.x", "bob")]);
        // A listing that began at 4 and a tick that began at 3 answer what was before.
        crawl.begin(listings(&["a.x", "a.y"]), 4);
        assert_eq!(crawl.next(5), vec![key("a.x")], "a.y has no tenant here");
        assert!(!crawl.read(&key("a.x"), vec![binding("a.x", "ann")], 3));
        assert_eq!(bound(&mut crawl), vec![binding("a.x", "bob")]);
        // A listing that began after the webhook is the newer answer.
        crawl.begin(listings(&["a.x", "a.y"]), 6);
        assert_eq!(
            crawl.next(5),
            vec![key("a.y"), key("a.x")],
            "a.y again, never read"
        );
        crawl.read(&key("a.x"), vec![binding("a.x", "ann")], 7);
        crawl.read(&key("a.y"), vec![], 7);
        assert_eq!(bound(&mut crawl), vec![binding("a.x", "ann")]);
    }

    #[test]
    fn projects_a_listing_lacks_are_named_for_a_point_read() {
        let mut crawl = Crawl::<u32>::default();
        crawl.begin(listings(&["a.x", "a.y"]), 0);
        let mut shifted = listings(&["a.x", "a.y"]);
        shifted.projects.remove(&key("a.y"));
        assert_eq!(crawl.unlisted(&shifted), vec![key("a.y")]);
        let mut no_tenant = listings(&["a.x", "a.y"]);
        no_tenant.tenants.remove(&key("a.x"));
        assert_eq!(crawl.untenanted(&no_tenant), vec![key("a.x")]);
        assert!(crawl.unlisted(&listings(&["a.x", "a.y", "a.z"])).is_empty());
    }

    #[test]
    fn a_cycle_is_the_interval_unless_the_rate_cannot_read_the_estate_within_it() {
        // 10,000 projects: 5 listing pages of 1,000 (users 30 pages) and 10,000 bindings reads.
        let seconds = cycle_of_shape(10_000, 1000, false, 10.0, 900);
        assert!((seconds - (1.0 + 20.0 + 30.0 + 10_000.0) / 7.5).abs() < 1.0);
        assert_eq!(cycle_of_shape(100, 1000, false, 10.0, 900), 900.0);
        assert_eq!(cycle_seconds(10, 0.0, 900), f64::INFINITY);
    }
}
