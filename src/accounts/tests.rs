//! The pure account core (desired accounts, locating, pending steps) and the executor with
//! fakes for the paths moto cannot show: a creation in progress, failure reasons, a lost run.

use super::aws::{AccountError, Landing, Organization};
use super::run::{Options, provision};
use super::*;
use crate::config::{AccessStack, StackSetTarget};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// The demo configuration with landing zone `dev` (and `alias` as the alias pattern).
fn config(alias: &str) -> Config {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.dhall");
    let types = concat!(env!("CARGO_MANIFEST_DIR"), "/config/types/package.dhall");
    let text = format!(
        r#"let T = {types}
let c = {demo}
in c // {{ aws = c.aws // {{ accountAliasPattern = Some "{alias}" }}
        , replicator = c.replicator // {{ accounts = c.replicator.accounts // {{ landing-zones =
            [ {{ mapKey = "dev", mapValue = T.LandingZone::{{
                 organizational-unit = "/workloads/dev",
                 tags = [ {{ mapKey = "cost-center", mapValue = "1234" }} ],
                 access-stack = Some {{ stack-name = "access", template = "{{\"Resources\":{{}}}}" }},
                 stack-sets = [ {{ name = "baseline", regions = [ "eu-central-1" ] }} ],
                 lambda = Some "arn:aws:lambda:eu-central-1:210987654321:function:Downgrade" }} }} ] }} }} }}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.dhall");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn snapshot() -> Snapshot {
    let mut s = Snapshot::from_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sample-snapshot.json"
    )))
    .unwrap();
    for t in &mut s.tenants {
        t.landing_zone = Some("dev".into());
    }
    s
}

#[test]
fn each_tenant_of_a_configured_landing_zone_gets_its_account() {
    let config = config("acme-%s-%s");
    let mut snap = snapshot();
    snap.tenants[0].landing_zone = Some("elsewhere".into());
    let (wanted, held) = desired_accounts(&snap, &config, &Scope::All);
    assert!(held.is_empty(), "{held:?}");
    let names: Vec<_> = wanted.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["acme.data", "globex.legacy", "globex.shop"],
        "acme.web is elsewhere"
    );
    let legacy = &wanted[1];
    assert_eq!(legacy.known_id, None);
    assert_eq!(legacy.email, "aws+globex.legacy@example.com");
    assert_eq!(legacy.alias, "acme-globex-legacy");
    assert_eq!(legacy.tags["aws-replicator:platform"], "aws.aws-meshcloud");
    assert_eq!(legacy.tags["aws-replicator:project"], "globex.legacy");
    assert_eq!(legacy.tags["cost-center"], "1234");
    assert_eq!(wanted[0].known_id.as_deref(), Some("222222222222"));
}

#[test]
fn a_project_whose_alias_aws_would_refuse_is_held() {
    let config = config("%3$s");
    let mut snap = snapshot();
    // "1" is too short for an alias; a project without a numeric id cannot render one.
    snap.projects[0]
        .tags
        .insert("meshProjectId".into(), vec!["1".into()]);
    snap.projects[1].tags.clear();
    let (_, held) = desired_accounts(&snap, &config, &Scope::All);
    let reasons: Vec<String> = held.iter().map(ToString::to_string).collect();
    assert!(
        reasons.iter().any(|r| r.contains("is not 3–63")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("numeric id")),
        "{reasons:?}"
    );
}

#[test]
fn aliases_follow_iams_rule() {
    assert!(check_alias("acme-web").is_ok());
    for bad in [
        "ab",
        "Acme-web",
        "acme_web",
        "-acme",
        "acme-",
        "ac--me",
        &"a".repeat(64),
    ] {
        assert!(check_alias(bad).is_err(), "{bad}");
    }
}

fn desired() -> DesiredAccount {
    DesiredAccount {
        project: ProjectKey::new("acme", "web"),
        landing_zone: "dev".into(),
        known_id: None,
        name: "acme.web".into(),
        email: "aws+acme.web@example.com".into(),
        alias: "acme-web".into(),
        tags: BTreeMap::from([
            (TAG_PLATFORM.into(), "aws.aws-meshcloud".into()),
            (TAG_PROJECT.into(), "acme.web".into()),
        ]),
    }
}

fn zone() -> LandingZone {
    LandingZone {
        organizational_unit: crate::config::OuTarget::Path(vec!["dev".into()]),
        tags: BTreeMap::new(),
        access_stack: Some(AccessStack {
            stack_name: "access".into(),
            template: "{\"Resources\":{}}".into(),
        }),
        stack_sets: vec![StackSetTarget {
            name: "baseline".into(),
            regions: vec!["eu-central-1".into()],
        }],
        lambda: Some("arn:aws:lambda:eu-central-1:210987654321:function:Downgrade".into()),
    }
}

fn account(id: &str, email: &str) -> OrgAccount {
    OrgAccount {
        id: id.into(),
        email: email.into(),
        name: "x".into(),
        status: "ACTIVE".into(),
    }
}

#[test]
fn an_account_is_found_by_known_id_else_by_email_and_never_adopted_from_another_owner() {
    let d = desired();
    let accounts = [
        account("111111111111", "AWS+acme.web@example.com"),
        account("222222222222", "other@example.com"),
    ];
    assert_eq!(locate(&d, &accounts).unwrap().unwrap().id, "111111111111");
    let known = DesiredAccount {
        known_id: Some("222222222222".into()),
        ..d.clone()
    };
    assert_eq!(
        locate(&known, &accounts).unwrap().unwrap().id,
        "222222222222"
    );
    let gone = DesiredAccount {
        known_id: Some("999999999999".into()),
        ..d.clone()
    };
    assert!(
        locate(&gone, &accounts)
            .unwrap_err()
            .contains("not in this organization")
    );
    assert_eq!(locate(&d, &accounts[1..]).unwrap(), None);
    let mut suspended = accounts[0].clone();
    suspended.status = "SUSPENDED".into();
    assert!(locate(&d, &[suspended]).unwrap_err().contains("SUSPENDED"));

    let theirs = BTreeMap::from([(TAG_PROJECT.to_owned(), "globex.shop".to_owned())]);
    assert!(
        check_owner(&d, &accounts[0], &theirs)
            .unwrap_err()
            .contains("someone else")
    );
    assert!(check_owner(&d, &accounts[0], &BTreeMap::new()).is_ok());
}

fn policy(enforce_alias: bool) -> Policy<'static> {
    Policy {
        enforce_alias,
        avm_done_tag: None,
    }
}

/// The tags a fully bootstrapped account of `zone` carries: what each bootstrap step records.
fn bootstrap_tags(zone: &LandingZone) -> BTreeMap<String, String> {
    pending(&desired(), zone, None, None, policy(false))
        .iter()
        .filter_map(Step::done_tag)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn complete_view() -> AccountView {
    let mut tags = desired().tags;
    tags.extend(bootstrap_tags(&zone()));
    AccountView {
        id: "111111111111".into(),
        parent: "ou-dev".into(),
        tags,
        alias: Some(Some("acme-web".into())),
    }
}

/// The names of the steps an existing account in the landing zone's OU still needs.
fn steps(zone: &LandingZone, view: &AccountView, policy: Policy) -> Vec<String> {
    names(&pending(
        &desired(),
        zone,
        Some(view),
        Some("ou-dev"),
        policy,
    ))
}

fn names(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            serde_json::to_value(s).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_new_account_needs_every_step_in_order_and_a_complete_one_none() {
    let steps = pending(&desired(), &zone(), None, None, policy(false));
    assert_eq!(
        names(&steps),
        [
            "create",
            "place",
            "tag",
            "alias",
            "access_stack",
            "stack_sets",
            "downgrade"
        ]
    );
    let view = complete_view();
    assert_eq!(
        pending(
            &desired(),
            &zone(),
            Some(&view),
            Some("ou-dev"),
            policy(true)
        ),
        []
    );
}

#[test]
fn each_step_is_pending_exactly_while_its_state_differs() {
    let d = desired();
    let z = zone();
    let mut view = complete_view();
    view.parent = "r-root".into();
    assert_eq!(
        names(&pending(&d, &z, Some(&view), Some("ou-dev"), policy(false))),
        ["place"]
    );

    let mut view = complete_view();
    view.alias = Some(Some("hand-made".into()));
    assert_eq!(
        pending(&d, &z, Some(&view), Some("ou-dev"), policy(false)),
        []
    );
    assert_eq!(
        pending(&d, &z, Some(&view), Some("ou-dev"), policy(true)),
        [Step::Alias {
            from: Some("hand-made".into()),
            to: "acme-web".into()
        }]
    );

    let mut changed = z.clone();
    changed.stack_sets[0].regions.push("eu-west-1".into());
    changed.lambda = Some("arn:aws:lambda:eu-central-1:210987654321:function:Other".into());
    assert_eq!(
        names(&pending(
            &d,
            &changed,
            Some(&complete_view()),
            Some("ou-dev"),
            policy(false)
        )),
        ["stack_sets", "downgrade"],
        "a changed landing zone runs the changed steps again, and only those"
    );
}

#[test]
fn a_run_that_died_after_the_lambda_only_invokes_it_again() {
    let mut view = complete_view();
    view.tags.remove(TAG_DOWNGRADED);
    assert_eq!(steps(&zone(), &view, policy(false)), ["downgrade"]);
    assert!(notes(&zone(), &view).is_empty());
}

#[test]
fn a_changed_access_stack_is_deployed_until_the_downgrade_and_reported_after_it() {
    let mut changed = zone();
    changed.access_stack.as_mut().unwrap().template = "{\"Resources\":{\"X\":{}}}".into();
    let mut view = complete_view();
    view.tags.remove(TAG_DOWNGRADED);
    view.tags.remove(TAG_STACK_SETS);
    assert_eq!(
        steps(&changed, &view, policy(false)),
        ["access_stack", "stack_sets", "downgrade"],
        "not downgraded yet: the access role may still deploy"
    );
    let view = complete_view();
    assert_eq!(
        pending(
            &desired(),
            &changed,
            Some(&view),
            Some("ou-dev"),
            policy(false)
        ),
        [],
        "downgraded: the access role may only read stacks"
    );
    let notes = notes(&changed, &view);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("access stack access") && notes[0].contains("StackSet"),
        "{notes:?}"
    );
    assert!(super::notes(&zone(), &view).is_empty());
}

#[test]
fn waiting_for_the_vending_machine_holds_the_later_steps() {
    let mut view = complete_view();
    for tag in [TAG_ACCESS_STACK, TAG_STACK_SETS, TAG_DOWNGRADED] {
        view.tags.remove(tag);
    }
    let avm = Policy {
        enforce_alias: false,
        avm_done_tag: Some(("meshstack-avm", "done")),
    };
    assert_eq!(steps(&zone(), &view, avm), ["await_avm"]);
    view.tags.insert("meshstack-avm".into(), "done".into());
    assert_eq!(
        steps(&zone(), &view, avm),
        ["access_stack", "stack_sets", "downgrade"]
    );
}

#[test]
fn create_failures_say_what_and_how_to_fix() {
    let e = explain_create_failure("EMAIL_ALREADY_EXISTS", "aws+a.b@example.com");
    assert!(
        e.contains("aws+a.b@example.com") && e.contains("fix:"),
        "{e}"
    );
    assert!(explain_create_failure("ACCOUNT_LIMIT_EXCEEDED", "x").contains("quota"));
    assert!(explain_create_failure("CONCURRENT_ACCOUNT_MODIFICATION", "x").contains("next run"));
}

/// An organization in memory whose CreateAccount answers with scripted statuses.
#[derive(Default)]
struct FakeOrg {
    accounts: Mutex<Vec<OrgAccount>>,
    statuses: Mutex<VecDeque<CreateStatus>>,
    /// When a creation succeeds, this account appears.
    appears: Mutex<Option<OrgAccount>>,
    writes: Mutex<Vec<String>>,
}

impl Organization for FakeOrg {
    async fn accounts(&self) -> Result<Vec<OrgAccount>, AccountError> {
        Ok(self.accounts.lock().unwrap().clone())
    }
    async fn parent(&self, _: &str) -> Result<String, AccountError> {
        Ok("ou-dev".into())
    }
    async fn tags(&self, _: &str) -> Result<BTreeMap<String, String>, AccountError> {
        let mut tags = desired().tags;
        tags.extend(bootstrap_tags(&zone()));
        Ok(tags)
    }
    async fn tag(&self, _: &str, _: &BTreeMap<String, String>) -> Result<(), AccountError> {
        self.writes.lock().unwrap().push("tag".into());
        Ok(())
    }
    async fn create_account(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &BTreeMap<String, String>,
    ) -> Result<String, AccountError> {
        self.writes.lock().unwrap().push("create".into());
        Ok("car-1".into())
    }
    async fn create_status(&self, _: &str) -> Result<CreateStatus, AccountError> {
        let status = self
            .statuses
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(CreateStatus::InProgress);
        if !matches!(status, CreateStatus::InProgress)
            && let Some(a) = self.appears.lock().unwrap().take()
        {
            self.accounts.lock().unwrap().push(a);
        }
        Ok(status)
    }
    async fn root(&self) -> Result<String, AccountError> {
        Ok("r-root".into())
    }
    async fn child_ous(&self, _: &str) -> Result<Vec<(String, String)>, AccountError> {
        Ok(vec![("ou-dev".into(), "dev".into())])
    }
    async fn create_ou(&self, _: &str, _: &str) -> Result<String, AccountError> {
        self.writes.lock().unwrap().push("create_ou".into());
        Ok("ou-new".into())
    }
    async fn move_account(&self, _: &str, _: &str, _: &str) -> Result<(), AccountError> {
        self.writes.lock().unwrap().push("move".into());
        Ok(())
    }
}

struct FakeLanding;

impl Landing for FakeLanding {
    async fn alias(&self, _: &str) -> Result<Option<String>, AccountError> {
        Ok(Some("acme-web".into()))
    }
    async fn set_alias(&self, _: &str, _: &str) -> Result<(), AccountError> {
        Ok(())
    }
    async fn deploy_stack(&self, _: &str, _: &str, _: &str) -> Result<(), AccountError> {
        Ok(())
    }
    async fn stack_instances(&self, _: &str, _: &StackSetTarget) -> Result<(), AccountError> {
        Ok(())
    }
    async fn invoke(&self, _: &str, _: &str) -> Result<(), AccountError> {
        Ok(())
    }
}

fn options(dry_run: bool) -> Options {
    Options {
        dry_run,
        enforce_alias: false,
        avm_done_tag: None,
        create_timeout: Duration::from_secs(600),
        access_role: DEFAULT_ACCESS_ROLE.into(),
        platform: "aws.aws-meshcloud".into(),
    }
}

async fn run(org: &FakeOrg, dry_run: bool) -> run::Report {
    let zones = BTreeMap::from([("dev".to_owned(), zone())]);
    provision(
        &[desired()],
        Vec::new(),
        &zones,
        org,
        &FakeLanding,
        &options(dry_run),
        &crate::audit::Audit::discard(),
    )
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_creation_in_progress_is_polled_until_it_succeeds() {
    let org = FakeOrg::default();
    org.statuses.lock().unwrap().extend([
        CreateStatus::InProgress,
        CreateStatus::InProgress,
        CreateStatus::Succeeded {
            account: "111111111111".into(),
        },
    ]);
    *org.appears.lock().unwrap() = Some(account("111111111111", "aws+acme.web@example.com"));
    let report = run(&org, false).await;
    let o = &report.accounts[0];
    assert_eq!(o.error, None);
    assert_eq!(o.account.as_deref(), Some("111111111111"));
    assert_eq!(names(&o.done), ["create"], "the rest was already in place");
    assert_eq!(*org.writes.lock().unwrap(), ["create"]);
}

#[tokio::test(start_paused = true)]
async fn an_email_that_exists_after_a_lost_run_is_adopted_not_created_twice() {
    let org = FakeOrg::default();
    org.statuses
        .lock()
        .unwrap()
        .push_back(CreateStatus::Failed {
            reason: "EMAIL_ALREADY_EXISTS".into(),
        });
    *org.appears.lock().unwrap() = Some(account("111111111111", "aws+acme.web@example.com"));
    let report = run(&org, false).await;
    assert_eq!(report.accounts[0].error, None);
    assert_eq!(report.accounts[0].account.as_deref(), Some("111111111111"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_creation_is_reported_with_its_fix_and_nothing_else_happens() {
    let org = FakeOrg::default();
    org.statuses
        .lock()
        .unwrap()
        .push_back(CreateStatus::Failed {
            reason: "ACCOUNT_LIMIT_EXCEEDED".into(),
        });
    let report = run(&org, false).await;
    let e = report.accounts[0].error.as_deref().unwrap();
    assert!(e.contains("quota") && e.contains("fix:"), "{e}");
    assert_eq!(*org.writes.lock().unwrap(), ["create"]);
    assert_eq!(report.failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_creation_still_running_at_the_timeout_is_left_for_the_next_run() {
    let org = FakeOrg::default();
    let report = run(&org, false).await;
    let e = report.accounts[0].error.as_deref().unwrap();
    assert!(
        e.contains("still in progress") && e.contains("next run"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_lists_the_steps_and_writes_nothing() {
    let org = FakeOrg::default();
    let report = run(&org, true).await;
    assert_eq!(names(&report.accounts[0].pending)[0], "create");
    assert!(org.writes.lock().unwrap().is_empty());
    assert_eq!(report.accounts[0].account, None);
}

#[tokio::test(start_paused = true)]
async fn an_account_tagged_as_ours_is_adopted_even_after_the_email_pattern_changed() {
    let org = FakeOrg::default();
    org.accounts
        .lock()
        .unwrap()
        .push(account("111111111111", "old-pattern+acme.web@example.com"));
    let report = run(&org, false).await;
    assert_eq!(report.accounts[0].error, None);
    assert_eq!(report.accounts[0].account.as_deref(), Some("111111111111"));
    assert!(org.writes.lock().unwrap().is_empty(), "nothing created");
}

#[test]
fn a_lambda_that_raised_or_answered_a_failure_status_failed() {
    use super::aws::lambda_result;
    assert!(
        lambda_result(
            None,
            r#"{"statusCode": 200, "body": "Successfully downgraded"}"#
        )
        .is_ok()
    );
    assert!(
        lambda_result(None, "Simple Lambda happy path OK").is_ok(),
        "no status: no verdict"
    );
    let raised =
        lambda_result(Some("Unhandled"), r#"{"errorMessage": "AccessDenied"}"#).unwrap_err();
    assert!(
        raised.contains("Unhandled") && raised.contains("AccessDenied"),
        "{raised}"
    );
    let refused = lambda_result(None, r#"{"statusCode": 403, "body": "no"}"#).unwrap_err();
    assert!(refused.contains("statusCode 403"), "{refused}");
}
