//! `proven.rs`, `parents.rs` and removal by name in a pass: what a pass
//! does on each kind of engine, on the fake engine playing it.

use std::sync::Arc;
use std::time::Duration;

use cascade_scope::{Label, Scope};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fake::{FakeDocker, image, ours};
use crate::sentry_report::{UNEXPECTED_SOURCE, UNPROVEN_SOURCE};

fn identity(implementation: Implementation, version: &str) -> EngineIdentity {
    EngineIdentity {
        implementation,
        version: version.into(),
        api_version: Some("1.41".into()),
        store: ImageStore::ContainersStorage {
            driver: "vfs".into(),
        },
    }
}

fn podman(version: &str) -> Option<EngineIdentity> {
    Some(identity(Implementation::Podman, version))
}

fn source(event: &sentry::protocol::Event<'static>) -> Option<String> {
    event.tags.get("source").cloned()
}

fn plan() -> SweepConfig {
    SweepConfig {
        dry_run: true,
        ..config(Duration::ZERO)
    }
}

#[test]
fn an_unproven_engine_is_refused_for_removal_and_reported_once() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.identity = podman("4.9.3"));
    let (report, events) = pass(&fake, config(Duration::ZERO));
    assert!(report.removed.is_empty(), "{report:#?}");
    let refused = report.refused.as_deref().expect("refused");
    assert!(
        refused.starts_with("Podman 4.9.3 (API 1.41), containers-storage (vfs driver) is not an engine the janitor has been proven on"),
        "{refused}"
    );
    assert!(report.has_failures(), "a refusal is a failed pass");
    assert_eq!(
        fake.edit(|s| (s.filters_seen.len(), s.tag_calls.len(), s.remove_calls)),
        (0, 0, 0),
        "nothing listed, named or removed"
    );
    let summary = report.engine.as_ref().expect("identified");
    assert_eq!(
        (summary.proven.as_deref(), summary.removal.as_deref()),
        (None, None)
    );
    let sources: Vec<_> = events.iter().map(source).collect();
    assert_eq!(sources, [Some(UNPROVEN_SOURCE.to_string())]);
    assert_eq!(
        events[0].tags.get("version").map(String::as_str),
        Some("4.9.3")
    );
}

#[test]
fn a_plan_still_works_on_an_unproven_engine_and_says_it_would_be_refused() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.identity = podman("6.1.1"));
    let (report, events) = pass(&fake, plan());
    assert_eq!(ids(&report.would_remove), ["sha256:a"]);
    assert!(report.refused.is_some());
    assert!(!report.has_failures(), "a plan is not a failure");
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn an_allowed_unproven_engine_is_swept_with_every_guard() {
    let scope = Scope::new(
        ["cascade.managed=true", "project=x"].map(|l| l.parse::<Label>().expect("label")),
    )
    .expect("scope");
    let fake = Arc::new(FakeDocker::with_images(vec![image(
        "sha256:a",
        &[("cascade.managed", "true"), ("project", "x")],
        &[],
        3600,
    )]));
    fake.edit(|s| s.identity = podman("4.9.3"));
    let (report, _) = pass(
        &fake,
        SweepConfig {
            scope,
            allow_unproven_engine: true,
            ..config(Duration::ZERO)
        },
    );
    assert_eq!(ids(&report.removed), ["sha256:a"]);
    assert_eq!(report.refused, None);
    assert_eq!(
        fake.edit(|s| s.filters_seen[0].get("label").cloned()),
        Some(vec!["cascade.managed=true".to_string()]),
        "one label filter, as Podman 4.3 needs"
    );
}

#[test]
fn docker_29_is_refused_until_proven() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| {
        s.identity = Some(EngineIdentity {
            implementation: Implementation::Docker,
            version: "29.0.1".into(),
            api_version: Some("1.52".into()),
            store: ImageStore::Containerd {
                snapshotter: "overlayfs".into(),
            },
        })
    });
    let (report, _) = pass(&fake, config(Duration::ZERO));
    let refused = report.refused.expect("refused");
    assert!(
        refused.contains("Docker 29.0 is newer than every proven release"),
        "{refused}"
    );
    assert_eq!(fake.removed(), Vec::<String>::new());
}

/// Podman 4.3's parents: `base` (tagged) <- `p` (unnamed, unlabelled:
/// the base whose tag moved) <- `c` (ours, dangling); and `q` (unnamed,
/// labelled, old) <- `d` (ours, dangling).
fn podman43_with_parents() -> Arc<FakeDocker> {
    let mut c = ours("sha256:c");
    c.parent_id = "p".into();
    let mut d = ours("sha256:d");
    d.parent_id = "q".into();
    let fake = Arc::new(FakeDocker::with_images(vec![c, d]));
    let mut p = image("sha256:p", &[("app", "mysql")], &[], 7200);
    p.parent_id = "base".into();
    let q = ours("sha256:q");
    fake.edit(|s| {
        s.identity = podman("4.3.1");
        s.prunes_parents = true;
        s.inspectable = vec![
            image("sha256:base", &[], &["docker.io/library/base:1"], 9000),
            p,
            q,
        ];
    });
    fake
}

#[test]
fn on_podman_4_3_an_image_whose_removal_would_take_an_unlabelled_parent_is_kept() {
    let fake = podman43_with_parents();
    let (report, events) = pass(&fake, config(Duration::ZERO));
    assert_eq!(
        ids(&report.removed),
        ["sha256:d", "sha256:q"],
        "a labelled old parent goes with its child, and is counted"
    );
    let kept: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.image.id.as_str(), s.reason.clone()))
        .collect();
    assert_eq!(
        kept,
        [(
            "sha256:c",
            SkipReason::WouldRemoveParent {
                parent: "sha256:p".into(),
                detail: "image lacks label `cascade.managed`".into()
            }
        )]
    );
    assert_eq!(
        fake.present(),
        ["sha256:base", "sha256:c", "sha256:p"],
        "the unlabelled parent and its child survive"
    );
    assert!(events.is_empty(), "the parent was expected: {events:?}");
}

#[test]
fn on_podman_4_3_a_parent_too_young_or_in_use_keeps_its_child() {
    for (young, used) in [(true, false), (false, true)] {
        let mut c = ours("sha256:c");
        c.parent_id = "q".into();
        let fake = Arc::new(FakeDocker::with_images(vec![c]));
        let q = ours("sha256:q");
        fake.edit(|s| {
            s.identity = podman("4.3.1");
            s.prunes_parents = true;
            s.inspectable = vec![q];
            if used {
                s.used.insert("sha256:q".into());
            }
        });
        let mut config = config(Duration::from_secs(600));
        if young {
            fake.edit(|s| s.inspectable[0].created = crate::fake::now() - 60);
            config.min_age = Duration::from_secs(600);
        }
        let (report, _) = pass(&fake, config);
        assert!(report.removed.is_empty(), "{young} {used}: {report:#?}");
        assert_eq!(
            reasons(&report),
            [("sha256:c", "would_remove_parent")],
            "young {young}, used {used}"
        );
    }
}

#[test]
fn a_plan_on_podman_4_3_shows_why_an_image_is_kept_for_its_parent() {
    let fake = podman43_with_parents();
    let (report, _) = pass(&fake, plan());
    assert_eq!(ids(&report.would_remove), ["sha256:d"]);
    assert!(
        reasons(&report).contains(&("sha256:c", "would_remove_parent")),
        "{report:#?}"
    );
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
}

#[test]
fn two_labels_go_to_podman_4_3_as_one_filter_and_are_checked_by_the_janitor() {
    let scope =
        Scope::new(["a=1", "b=2"].map(|l| l.parse::<Label>().expect("label"))).expect("scope");
    let fake = Arc::new(FakeDocker::with_images(vec![
        image("sha256:both", &[("a", "1"), ("b", "2")], &[], 3600),
        image("sha256:only-a", &[("a", "1")], &[], 3600),
    ]));
    fake.edit(|s| s.identity = podman("4.3.1"));
    let (report, _) = pass(
        &fake,
        SweepConfig {
            scope: scope.clone(),
            ..config(Duration::ZERO)
        },
    );
    assert_eq!(ids(&report.removed), ["sha256:both"]);
    assert_eq!(
        reasons(&report),
        [],
        "asked for knowingly: not an engine's mistake, not in the report"
    );
    assert_eq!(report.listed, 1);
    assert_eq!(
        fake.edit(|s| s.filters_seen[0]["label"].clone()),
        ["a=1"],
        "Podman 4.3 ANDs no second label"
    );
    // Podman 5 ANDs them: both go to the engine.
    let fake = Arc::new(FakeDocker::default());
    fake.edit(|s| s.identity = podman("5.4.2"));
    pass(
        &fake,
        SweepConfig {
            scope,
            ..config(Duration::ZERO)
        },
    );
    assert_eq!(
        fake.edit(|s| s.filters_seen[0]["label"].clone()),
        ["a=1", "b=2"]
    );
}

#[test]
fn a_deletion_the_janitor_did_not_ask_for_is_reported() {
    // An engine that prunes parents though the table says it does not:
    // the answer names an image the pass did not check.
    let mut c = ours("sha256:c");
    c.parent_id = "p".into();
    let fake = Arc::new(FakeDocker::with_images(vec![c]));
    fake.edit(|s| {
        s.identity = podman("5.4.2");
        s.prunes_parents = true;
        s.inspectable = vec![image("sha256:p", &[], &[], 7200)];
    });
    let (report, events) = pass(&fake, config(Duration::ZERO));
    assert_eq!(ids(&report.removed), ["sha256:c"], "not counted as ours");
    let unexpected: Vec<_> = events
        .iter()
        .filter(|e| source(e).as_deref() == Some(UNEXPECTED_SOURCE))
        .collect();
    assert_eq!(unexpected.len(), 1, "{events:?}");
    assert_eq!(
        unexpected[0].extra.get("deleted").and_then(|v| v.as_str()),
        Some("p")
    );
}

#[test]
fn an_image_left_with_its_removal_name_is_removed_by_a_later_pass() {
    // A pass named it, then got a 409: a container appeared after its check.
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| {
        s.remove_errors.insert(
            "sha256:a".into(),
            DockerError::status(409, "image is being used by stopped container"),
        )
    });
    let (first, _) = pass(&fake, config(Duration::ZERO));
    assert_eq!(reasons(&first), [("sha256:a", "in_use")]);
    fake.edit(|s| {
        assert_eq!(
            s.images[0].repo_tags,
            ["localhost/cascade-janitor-removing:a"],
            "the name stays while the container does"
        );
        s.remove_errors.clear();
    });
    // The container is gone; the image is not dangling to the engine any
    // more, so only the removal-name listing finds it.
    let (second, events) = pass(&fake, config(Duration::ZERO));
    assert_eq!(ids(&second.removed), ["sha256:a"], "{second:#?}");
    assert!(events.is_empty());
    assert_eq!(
        fake.edit(|s| s.tag_calls.len()),
        1,
        "already named: no second tag"
    );
}

#[test]
fn a_removal_name_beside_a_real_tag_is_taken_off_and_the_image_kept() {
    let mut a = ours("sha256:a");
    a.repo_tags = vec![
        "localhost/cascade-janitor-removing:a".into(),
        "snap:1".into(),
    ];
    let fake = Arc::new(FakeDocker::default());
    fake.edit(|s| s.tagged = vec![a]);
    let (report, _) = pass(&fake, config(Duration::ZERO));
    assert!(report.removed.is_empty(), "{report:#?}");
    assert_eq!(fake.present(), ["sha256:a"]);
    assert_eq!(fake.edit(|s| s.tagged[0].repo_tags.clone()), ["snap:1"]);
}

#[test]
fn a_removal_name_on_an_image_out_of_scope_is_left_alone() {
    // Another janitor's labels, or a scope changed since: not ours now.
    let mut theirs = image("sha256:t", &[("app", "mysql")], &[], 3600);
    theirs.repo_tags = vec!["localhost/cascade-janitor-removing:t".into()];
    let fake = Arc::new(FakeDocker::default());
    fake.edit(|s| s.tagged = vec![theirs]);
    let (report, _) = pass(&fake, config(Duration::ZERO));
    assert!(report.removed.is_empty());
    assert_eq!(fake.present(), ["sha256:t"]);
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
}

#[test]
fn events_of_the_janitors_own_removals_are_recognised() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    let sweep = sweep(&fake, config(Duration::ZERO));
    let event = |action: &str, id: &str, name: &str| EngineEvent {
        action: action.into(),
        id: id.into(),
        name: name.into(),
    };
    let own_tag = event("tag", "sha256:a", "localhost/cascade-janitor-removing:a");
    // Docker names an untag by the image's ID.
    let docker_untag = event("untag", "sha256:a", "sha256:a");
    let podman_untag = event("untag", "a", "localhost/cascade-janitor-removing:a");
    let routers_tag = event("tag", "sha256:b", "cascade-snapshot-p-w:latest");
    assert!(sweep.caused(&own_tag) && sweep.caused(&podman_untag));
    assert!(!sweep.caused(&docker_untag), "not removed yet");
    let (report, _) = with_sentry(|| async { sweep.run(&CancellationToken::new()).await });
    assert_eq!(ids(&report.removed), ["sha256:a"]);
    assert!(sweep.caused(&docker_untag));
    assert!(sweep.caused(&event("untag", "a", "a")), "Podman's bare ID");
    assert!(!sweep.caused(&routers_tag));
    assert!(!sweep.caused(&event("untag", "sha256:b", "sha256:b")));
}
