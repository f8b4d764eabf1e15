//! No secret reaches a log, whatever `AWS_REPLICATOR_LOG` says: a whole `sync` (STS from moto,
//! SCIM and sso-admin from the emulator) at the filters a user would type, from `debug` to
//! naming the AWS SDK's own crates at `trace`. The AWS SDK's debug logs carry the request
//! context (the access key id, signatures, session tokens), so they are capped at `info`.

mod common;

const FILTERS: [&str; 5] = [
    "debug",
    "trace",
    "debug,aws_replicator=debug",
    "trace,aws_smithy_runtime=trace,aws_sigv4=trace",
    "aws_smithy_runtime=debug,aws_smithy_runtime_api=trace,aws_runtime=trace,aws_credential_types=trace,aws_config=trace",
];

/// Text that only credentials in a request show: SigV4's credential scope and signature, a
/// session token header, an access key id of assumed-role credentials (`ASIA…`).
fn credential_traces(line: &str) -> Option<&'static str> {
    const MARKERS: [&str; 4] = [
        "Credential=",
        "Signature=",
        "x-amz-security-token",
        "session_token",
    ];
    if let Some(m) = MARKERS.iter().find(|m| line.contains(**m)) {
        return Some(m);
    }
    let asia = line.match_indices("ASIA").any(|(i, _)| {
        let rest = &line[i + 4..];
        rest.len() >= 16
            && rest[..16]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    asia.then_some("an ASIA… access key id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_any_filter() {
    let s = common::cli::setup().await;
    let config = s.config("logs.dhall", "%s.%s.%4\\$s", "T.Replicator::{=}");
    for filter in FILTERS {
        let out = s
            .command()
            .env("AWS_REPLICATOR_LOG", filter)
            .args(["sync", "--config", config.to_str().unwrap()])
            .args(["--snapshot", "config/sample-snapshot.json"])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // The sample holds two projects that need a person: `sync` applies the rest and exits 3.
        assert_eq!(out.status.code(), Some(3), "{filter}: {stderr}");
        if filter.starts_with("debug") || filter.starts_with("trace") {
            assert!(stderr.contains("DEBUG"), "{filter}: debug logs were on");
        }
        for secret in common::cli::SECRETS {
            assert!(!stdout.contains(secret), "{filter}: {secret} on stdout");
            let leak = stderr.lines().find(|l| l.contains(secret));
            assert!(leak.is_none(), "{filter}: {secret} on stderr: {leak:?}");
        }
        for line in stderr.lines() {
            if let Some(marker) = credential_traces(line) {
                panic!("{filter}: {marker} on stderr: {line}");
            }
        }
        // The SDK's own debug and trace events are muted, whatever the filter names.
        let sdk = stderr.lines().find(|l| {
            (l.contains("DEBUG") || l.contains("TRACE"))
                && [
                    "aws_smithy",
                    "aws_sigv4",
                    "aws_runtime",
                    "aws_config",
                    "aws_credential",
                ]
                .iter()
                .any(|t| l.contains(t))
        });
        assert!(sdk.is_none(), "{filter}: {sdk:?}");
    }
}
