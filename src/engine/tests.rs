//! The engine's behaviour as a whole: restarts with the record, config changes, a poison
//! project, holds, webhooks and the drift scan, over plain data.

use super::*;
use crate::desired::{ApplyPolicy, DesiredGroup};
use crate::model::{AccountId, Euid, GroupName};

const S: Duration = Duration::from_secs(1);

fn key(p: &str) -> ProjectKey {
    ProjectKey::new("ws", p)
}

/// Projects `names`, each with one group per role in `roles`, alice in each; `held` held.
fn desired(names: &[&str], roles: &[&str], held: &[&str]) -> Desired {
    let mut groups = BTreeMap::new();
    for name in names {
        for role in roles {
            let identity = GroupIdentity {
                project: key(name),
                role: RoleId::from(*role),
            };
            groups.insert(
                identity.external_id("p"),
                DesiredGroup {
                    name: GroupName::from(format!("mst-ws.{name}.{role}").as_str()),
                    account: AccountId::from("111111111111"),
                    members: [Euid::from("alice")].into(),
                    permission_sets: Default::default(),
                    identity,
                },
            );
        }
    }
    Desired {
        platform: "p".into(),
        scope: Scope::All,
        groups,
        held: held.iter().map(|p| key(p)).collect(),
        findings: BTreeSet::new(),
        policy: ApplyPolicy {
            may_delete_assignments: false,
            scim_rate: 5.0,
            sso_admin_rate: 5.0,
        },
        roles: roles.iter().map(|r| RoleId::from(*r)).collect(),
        only_groups: None,
    }
}

fn roles(r: &[&str]) -> Vec<RoleId> {
    r.iter().map(|r| RoleId::from(*r)).collect()
}

/// Reconciles everything the queue hands out; `failing` fail.
fn drain(engine: &mut Engine<Duration>, now: Duration, failing: &[&str]) -> Vec<ProjectKey> {
    let mut done = Vec::new();
    loop {
        let work = engine.batch(10, now);
        if work.is_empty() {
            return done;
        }
        for w in work {
            let outcome = if failing.contains(&w.project.project.as_str()) {
                Err("ValidationException: not a member of the organization".to_owned())
            } else {
                Ok(())
            };
            done.push(w.project.clone());
            engine.settle(&w.project, w.digest, outcome, now);
        }
    }
}

#[test]
fn a_restart_with_the_record_reconciles_only_what_changed_and_a_config_change_everything() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..200).map(|i| format!("p{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let three = ["admin", "user", "reader"];
    let mut engine = Engine::new("p", roles(&three), None);
    assert_eq!(engine.read(desired(&names, &three, &[]), t0).0.len(), 200);
    assert_eq!(drain(&mut engine, t0, &[]).len(), 200);
    assert_eq!(engine.counts().confirmed, 200);
    // Nothing changed: nothing to do.
    assert_eq!(engine.read(desired(&names, &three, &[]), t0).0.len(), 0);
    let saved = engine.record().save("a", "now");

    // Restarted with the record: nothing changed, nothing queued.
    let mut restarted = Engine::new("p", roles(&three), Some(saved.clone()));
    let (queued, unusable) = restarted.read(desired(&names, &three, &[]), t0);
    assert_eq!((queued.len(), unusable), (0, None));
    assert_eq!(restarted.counts().confirmed, 200);
    // The saved copy is replaced before the first write after a load, whatever is written:
    // it may claim buckets this start did not take (found by the kill test in crash_safety.rs).
    assert!(restarted.forget_all(&BTreeSet::new()));
    assert!(!restarted.forget_all(&BTreeSet::new()));

    // A new replica without the reader mapping: every project differs, and the reconcile still
    // looks the reader groups up (to take their members away).
    let two = ["admin", "user"];
    let mut rolled = Engine::new("p", roles(&two), Some(saved.clone()));
    assert_eq!(rolled.read(desired(&names, &two, &[]), t0).0.len(), 200);
    let work = rolled.batch(1, t0);
    let slice = rolled.slice(&[work[0].project.clone()].into()).unwrap();
    assert!(
        slice.roles.contains(&RoleId::from("reader")),
        "{:?}",
        slice.roles
    );
    assert_eq!(slice.groups.len(), 2);

    // Garbage or another platform's record: nothing confirmed, everything read again.
    let other = Saved {
        platform: "q".into(),
        ..saved
    };
    let mut foreign = Engine::new("p", roles(&three), Some(other));
    let (queued, unusable) = foreign.read(desired(&names, &three, &[]), t0);
    assert_eq!(queued.len(), 200);
    assert!(matches!(unusable, Some(Unusable::Platform(_))));
}

/// A webhook served before the first read of everything (the crawl's first cycle is long)
/// writes to projects the saved record, not loaded yet, may claim: what is saved meanwhile
/// keeps every other claim and drops theirs, so that a kill then, and a later start whose
/// meshStack reads as before, reconciles them again instead of trusting the old claim.
#[test]
fn a_write_before_the_first_read_drops_its_bucket_from_the_saved_record_and_keeps_the_rest() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..200).map(|i| format!("p{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let three = ["admin", "user", "reader"];
    let mut engine = Engine::new("p", roles(&three), None);
    engine.read(desired(&names, &three, &[]), t0);
    drain(&mut engine, t0, &[]);
    let saved = engine.record().save("a", "now");

    let mut restarted = Engine::new("p", roles(&three), Some(saved.clone()));
    let webhook: BTreeSet<ProjectKey> = [key("p007")].into();
    let scoped = desired(&["p007"], &three, &[]);
    restarted.scoped(&scoped, &webhook, t0);
    let work = restarted.batch(10, t0);
    assert_eq!(work.len(), 1);
    assert!(
        restarted.forget_all(&webhook),
        "the saved copy must be replaced first"
    );
    let kept = restarted.save("b", "later");
    assert_eq!(kept.platform, saved.platform);
    // Killed here; the next start reads meshStack as the first one did.
    let mut next = Engine::new("p", roles(&three), Some(kept));
    let (queued, _) = next.read(desired(&names, &three, &[]), t0);
    assert!(queued.contains(&key("p007")), "{queued:?}");
    assert!(queued.len() < 10, "only p007's bucket: {}", queued.len());
}

#[test]
fn one_failing_project_is_retried_held_and_named_while_the_others_are_confirmed() {
    let mut now = Duration::ZERO;
    let names = ["a", "b", "poison", "c"];
    let mut engine = Engine::new("p", roles(&["admin"]), None);
    engine.read(desired(&names, &["admin"], &[]), now);
    let done = drain(&mut engine, now, &["poison"]);
    assert_eq!(done.len(), 4);
    let counts = engine.counts();
    assert_eq!((counts.confirmed, counts.failed), (3, 1));
    for _ in 1..queue::HOLD_AFTER {
        now = engine.queue().next_ready().unwrap();
        assert_eq!(drain(&mut engine, now, &["poison"]), [key("poison")]);
    }
    let counts = engine.counts();
    assert_eq!((counts.confirmed, counts.held, counts.failed), (3, 1, 0));
    let held: Vec<_> = engine
        .queue()
        .held()
        .map(|(p, f)| (p.clone(), f.error.clone()))
        .collect();
    assert_eq!(held.len(), 1);
    assert!(held[0].1.contains("not a member"), "{held:?}");

    // Its desired state changes (say, the account is fixed in meshStack): retried at once.
    let mut fixed = desired(&names, &["admin"], &[]);
    let poison = GroupIdentity {
        project: key("poison"),
        role: RoleId::from("admin"),
    }
    .external_id("p");
    fixed.groups.get_mut(&poison).unwrap().account = AccountId::from("222222222222");
    engine.read(fixed, now);
    assert_eq!(drain(&mut engine, now, &[]), [key("poison")]);
    assert_eq!(engine.counts().confirmed, 4);
}

#[test]
fn a_held_project_is_settled_without_work_and_reconciled_once_it_is_not() {
    let t0 = Duration::ZERO;
    let mut engine = Engine::new("p", roles(&["admin"]), None);
    engine.read(desired(&["a", "b"], &["admin"], &["b"]), t0);
    assert_eq!(drain(&mut engine, t0, &[]), [key("a")]);
    let saved = engine.record().save("a", "now");
    // The last leader saw b held; this one sees it free: b differs.
    let mut next = Engine::new("p", roles(&["admin"]), Some(saved));
    assert_eq!(
        next.read(desired(&["a", "b"], &["admin"], &[]), t0).0.len(),
        1
    );
    assert_eq!(drain(&mut next, t0, &[]), [key("b")]);
}

#[test]
fn a_webhook_jumps_the_backlog_and_a_change_during_the_reconcile_is_queued_again() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..50).map(|i| format!("p{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut engine = Engine::new("p", roles(&["admin"]), None);
    engine.read(desired(&names, &["admin"], &[]), t0);
    let mut scoped = desired(&["p42"], &["admin"], &[]);
    scoped.scope = Scope::projects([key("p42")]);
    engine.scoped(&scoped, &[key("p42")].into(), t0);
    let work = engine.batch(1, t0);
    assert_eq!(work[0].project, key("p42"));
    assert_eq!(work[0].priority, Priority::Webhook);
    // While p42 is worked on, meshStack changes it.
    let mut changed = desired(&["p42"], &["admin"], &[]);
    changed.scope = Scope::projects([key("p42")]);
    let id = changed.groups.keys().next().unwrap().clone();
    changed
        .groups
        .get_mut(&id)
        .unwrap()
        .members
        .insert(Euid::from("bob"));
    engine.scoped(&changed, &[key("p42")].into(), t0);
    engine.settle(&work[0].project, work[0].digest, Ok(()), t0);
    let again = engine.batch(1, t0);
    assert_eq!(again[0].project, key("p42"));
    assert_ne!(again[0].digest, work[0].digest);
}

#[test]
fn the_scan_confirms_what_it_reads_alike_and_queues_what_drifted() {
    let t0 = Duration::ZERO;
    let mut engine = Engine::new("p", roles(&["admin"]), None);
    engine.read(desired(&["a", "b", "c"], &["admin"], &[]), t0);
    // Nothing reconciled yet; the scan reads a and b: a is as it should be, b drifted.
    let slice = engine.scan_slice(None, 2);
    assert_eq!(slice, [key("a"), key("b")]);
    let (_, digests) = engine.scan_view(&slice).unwrap();
    let seen: BTreeSet<_> = slice.iter().cloned().collect();
    let queued = engine.scanned(&slice, &digests, &[key("b")].into(), &seen, t0, t0 + S);
    // b is in the start-up backlog already: its reconcile will read it.
    assert!(queued.is_empty());
    assert_eq!(engine.counts().confirmed, 1);
    // a needs no work now; b and c do.
    assert_eq!(drain(&mut engine, t0 + S, &[]), [key("b"), key("c")]);

    // A project gone from meshStack whose groups the listing shows is scanned and retired.
    engine.read(desired(&["a", "b"], &["admin"], &[]), t0 + 2 * S);
    assert_eq!(drain(&mut engine, t0 + 2 * S, &[]), [key("c")]);
    assert!(engine.record().entry(&key("c")).is_none());
    engine.listed([key("gone")], &[RoleId::from("admin")].into());
    assert!(engine.scan_slice(None, 10).contains(&key("gone")));
    let gone = [key("gone")];
    let queued = engine.scanned(
        &gone,
        &BTreeMap::new(),
        &[key("gone")].into(),
        &[key("gone")].into(),
        t0,
        t0,
    );
    assert_eq!(queued, [key("gone")].into());
    assert_eq!(drain(&mut engine, t0 + 2 * S, &[]), [key("gone")]);
    engine.scanned(
        &gone,
        &BTreeMap::new(),
        &BTreeSet::new(),
        &BTreeSet::new(),
        t0,
        t0,
    );
    assert!(!engine.scan_slice(None, 10).contains(&key("gone")));
}

fn limits() -> crate::plan::guard::Limits {
    crate::plan::guard::Limits {
        max_share: 0.1,
        max_count: 2,
    }
}

#[test]
fn reads_that_take_away_too_much_within_an_interval_pause_removals_and_additions_go_on() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..100).map(|i| format!("p{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut engine = Engine::new("p", roles(&["admin"]), None).guarded(limits(), 600 * S);
    engine.read(desired(&names, &["admin"], &[]), t0);
    drain(&mut engine, t0, &[]);

    // 6 % gone at one read passes; 6 % more at the next, within the interval, adds up to 12 %.
    engine.read(desired(&names[6..], &["admin"], &[]), t0 + S);
    assert!(engine.removals_paused().is_none());
    drain(&mut engine, t0 + S, &[]);
    let mut fewer = desired(&names[12..], &["admin"], &[]);
    fewer
        .groups
        .extend(desired(&["new"], &["admin"], &[]).groups);
    engine.read(fewer.clone(), t0 + 2 * S);
    let paused = engine.removals_paused().expect("paused").why.clone();
    assert_eq!((paused.what, paused.deleted), ("groups", 12));

    // Every project is still reconciled; those whose removals were left out wait, unconfirmed.
    let work = engine.batch(100, t0 + 2 * S);
    let projects: BTreeSet<ProjectKey> = work.iter().map(|w| w.project.clone()).collect();
    assert!(projects.contains(&key("new")) && projects.contains(&key("p006")));
    for w in &work {
        if w.project == key("new") {
            engine.settle(&w.project, w.digest, Ok(()), t0 + 2 * S);
        } else {
            engine.park(&w.project, w.digest, t0 + 2 * S);
        }
    }
    assert!(engine.batch(100, t0 + 2 * S).is_empty());
    assert_eq!(engine.counts().paused, 6);
    assert!(engine.record().entry(&key("p006")).is_none());
    // The pause is kept in the saved record: a restart does not lift it.
    let saved = engine.save("a", "now");
    assert!(saved.removals_paused.is_some());
    let restarted =
        Engine::<Duration>::new("p", roles(&["admin"]), Some(saved)).guarded(limits(), 600 * S);
    assert!(restarted.removals_paused().is_some());

    // A person allows them: the parked projects are reconciled again, with their removals.
    let allowed = engine.allow_removals(t0 + 3 * S).expect("was paused");
    assert_eq!(allowed.parked.len(), 6);
    assert_eq!(drain(&mut engine, t0 + 3 * S, &[]).len(), 6);
    assert!(engine.removals_paused().is_none());
    assert_eq!(engine.counts().paused, 0);

    // Past the interval, the count starts over: another 6 % passes.
    engine.read(desired(&names[18..], &["admin"], &[]), t0 + 700 * S);
    assert!(engine.removals_paused().is_none());
}

#[test]
fn a_paused_read_answered_right_again_resumes_removals_by_itself() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..50).map(|i| format!("p{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut engine = Engine::new("p", roles(&["admin"]), None).guarded(limits(), 600 * S);
    engine.read(desired(&names, &["admin"], &[]), t0);
    drain(&mut engine, t0, &[]);
    // meshStack answers with half the estate missing: paused, nothing of it removed.
    engine.read(desired(&names[25..], &["admin"], &[]), t0 + S);
    assert!(engine.removals_paused().is_some());
    for w in engine.batch(100, t0 + S) {
        engine.park(&w.project, w.digest, t0 + S);
    }
    // A scoped read does not resume: it sees only its projects.
    let one = desired(&["p40"], &["admin"], &[]);
    engine.scoped(
        &Desired {
            scope: Scope::projects([key("p40")]),
            ..one
        },
        &[key("p40")].into(),
        t0 + 2 * S,
    );
    assert!(engine.removals_paused().is_some());
    // The next read of everything is whole again, less one project: removals resume.
    engine.read(desired(&names[1..], &["admin"], &[]), t0 + 3 * S);
    assert!(engine.removals_paused().is_none());
    let again = drain(&mut engine, t0 + 3 * S, &[]);
    assert!(again.contains(&key("p00")), "{again:?}");
}

#[test]
fn a_webhook_that_empties_a_project_is_measured_too() {
    let t0 = Duration::ZERO;
    let mut engine = Engine::new("p", roles(&["admin", "user"]), None).guarded(limits(), 600 * S);
    engine.read(desired(&["a", "b"], &["admin", "user"], &[]), t0);
    drain(&mut engine, t0, &[]);
    // Project a's answer lost both groups: every group of a, half the estate's.
    let empty = Desired {
        scope: Scope::projects([key("a")]),
        ..desired(&[], &["admin", "user"], &[])
    };
    engine.scoped(&empty, &[key("a")].into(), t0 + S);
    assert!(engine.removals_paused().is_some());
}

/// A new process has no read before its first: it measures that read against what the saved
/// record's projects wanted. A start whose meshStack answer strips most projects' members
/// pauses removals (a person resumes them); one that takes away a little does not; a record
/// without counts (an older one) measures nothing.
#[test]
fn the_first_read_after_a_start_is_measured_against_the_saved_record() {
    let t0 = Duration::ZERO;
    let names: Vec<String> = (0..100).map(|i| format!("p{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut engine = Engine::new("p", roles(&["admin"]), None).guarded(limits(), 600 * S);
    engine.read(desired(&names, &["admin"], &[]), t0);
    drain(&mut engine, t0, &[]);
    let saved = engine.save("a", "then");
    let counts = saved.managed.as_ref().expect("counted");
    let total: u64 = counts.iter().map(|c| c[1]).sum();
    assert_eq!(total, 100, "one membership a project");

    // Restarted, meshStack answers with alice gone from 40 projects (held ones aside).
    let mut stripped = desired(&names, &["admin"], &["p099"]);
    for group in stripped.groups.values_mut().take(40) {
        group.members.clear();
    }
    let mut started =
        Engine::new("p", roles(&["admin"]), Some(saved.clone())).guarded(limits(), 600 * S);
    started.read(stripped, t0 + S);
    let paused = started.removals_paused().expect("paused").why.clone();
    assert_eq!((paused.what, paused.deleted), ("memberships", 40));

    // Two projects gone: within the guard.
    let mut started =
        Engine::new("p", roles(&["admin"]), Some(saved.clone())).guarded(limits(), 600 * S);
    started.read(desired(&names[2..], &["admin"], &[]), t0 + S);
    assert!(started.removals_paused().is_none());

    // A record from before counts were kept measures nothing.
    let older = Saved {
        managed: None,
        ..saved
    };
    let mut started = Engine::new("p", roles(&["admin"]), Some(older)).guarded(limits(), 600 * S);
    started.read(desired(&names[50..], &["admin"], &[]), t0 + S);
    assert!(started.removals_paused().is_none());
}
