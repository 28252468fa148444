//! `sweep.rs`: one pass, its checks, its report and its progress.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascade_scope::{Label, Scope};
use sentry::protocol::Level;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fake::{FakeDocker, image, now, ours};

#[test]
fn lists_with_exactly_the_original_filters() {
    let fake = Arc::new(FakeDocker::default());
    let (report, events) = pass(&fake, SweepConfig::default());
    assert_eq!(
        report,
        SweepReport {
            duration: report.duration,
            engine: Some(EngineSummary {
                implementation: "docker".into(),
                version: "28.5.2".into(),
                api_version: Some("1.51".into()),
                store: "classic".into(),
                driver: "vfs".into(),
                proven: Some("Docker 20.10 to 28.x, classic store".into()),
                removal: Some("removal_name".into()),
            }),
            ..SweepReport::default()
        }
    );
    assert!(events.is_empty());
    let expected = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec!["cascade.managed=true".to_string()],
        ),
    ]);
    assert_eq!(fake.edit(|s| s.filters_seen.clone()), vec![expected]);
    assert_eq!(
        fake.edit(|s| s.references_seen.clone()),
        [["localhost/cascade-janitor-removing"]],
        "and the images a pass before left with their removal name"
    );
}

#[test]
fn verifies_every_candidate_even_when_the_engine_ignores_the_filter() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:ours"),
        image("sha256:mysql", &[], &["mysql:8.0"], 3600),
        image("sha256:unlabelled", &[], &["<none>:<none>"], 3600),
        image("sha256:false", &[("cascade.managed", "false")], &[], 3600),
        image("sha256:casing", &[("Cascade.Managed", "true")], &[], 3600),
        image(
            "sha256:tagged",
            &[("cascade.managed", "true")],
            &["cascade-snapshot-p-w:latest"],
            3600,
        ),
    ]));
    let (report, events) = pass(&fake, config(Duration::ZERO));
    assert_eq!(fake.removed(), vec!["sha256:ours"]);
    assert_eq!(ids(&report.removed), vec!["sha256:ours"]);
    assert_eq!(report.listed, 6);
    assert_eq!(
        report.skipped_by_reason().get("failed_verification"),
        Some(&5)
    );
    assert_eq!(
        fake.edit(|s| s.remove_calls),
        1,
        "nothing out of scope is even attempted"
    );
    assert!(events.is_empty());
}

#[test]
fn multiple_labels_are_anded() {
    let scope = Scope::new(
        ["cascade.managed=true", "project=alpha"].map(|l| l.parse::<Label>().expect("label")),
    )
    .expect("scope");
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:only-one"),
        image(
            "sha256:both",
            &[("cascade.managed", "true"), ("project", "alpha")],
            &[],
            3600,
        ),
    ]));
    let (report, _) = pass(
        &fake,
        SweepConfig {
            scope,
            min_age: Duration::ZERO,
            ..SweepConfig::default()
        },
    );
    assert_eq!(fake.removed(), vec!["sha256:both"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        fake.edit(|s| s.filters_seen[0]["label"].clone()),
        vec!["cascade.managed=true", "project=alpha"]
    );
}

/// A creation time before 1970 comes from a zero or garbled time, not an
/// old image: its age is unknown, so it is kept whatever `--min-age`.
#[test]
fn an_image_created_before_1970_is_never_old_enough() {
    let mut garbled = ours("sha256:garbled");
    garbled.created = -62_135_596_800;
    let mut minimum = ours("sha256:minimum");
    minimum.created = i64::MIN;
    let mut epoch = ours("sha256:epoch");
    epoch.created = 0;
    for min_age in [Duration::ZERO, Duration::from_secs(600)] {
        let fake = Arc::new(FakeDocker::with_images(vec![
            garbled.clone(),
            minimum.clone(),
            epoch.clone(),
        ]));
        let (report, _) = pass(&fake, config(min_age));
        assert_eq!(fake.removed(), vec!["sha256:epoch"], "{min_age:?}");
        assert_eq!(
            report.skipped_by_reason().get("failed_verification"),
            Some(&2)
        );
    }
}

#[test]
fn images_younger_than_the_minimum_age_are_kept() {
    let images = vec![
        image("sha256:young", &[("cascade.managed", "true")], &[], 30),
        image("sha256:future", &[("cascade.managed", "true")], &[], -3600),
        ours("sha256:old"),
    ];
    let fake = Arc::new(FakeDocker::with_images(images.clone()));
    let (report, _) = pass(&fake, config(Duration::from_secs(600)));
    assert_eq!(fake.removed(), vec!["sha256:old"]);
    assert_eq!(report.skipped_by_reason().get("too_young"), Some(&2));

    let fake = Arc::new(FakeDocker::with_images(images));
    let (report, _) = pass(&fake, config(Duration::ZERO));
    assert_eq!(report.removed.len(), 3, "0s keeps nothing for age");
}

#[test]
fn in_use_and_gone_are_skipped_quietly_other_errors_are_reported_and_the_loop_continues() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..6).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| {
        s.used.insert("sha256:0".into()); // seen in the container list: not even tried
        s.remove_errors.insert(
            "sha256:1".into(),
            DockerError::status(409, "has dependent child images"),
        );
        s.remove_errors
            .insert("sha256:2".into(), DockerError::status(404, "No such image"));
        s.remove_errors
            .insert("sha256:3".into(), DockerError::status(500, "driver failed"));
    });
    let ((report, events), logs) = with_logs(|| pass(&fake, config(Duration::ZERO)));
    assert_eq!(fake.removed(), vec!["sha256:4", "sha256:5"]);
    assert_eq!(fake.edit(|s| s.remove_calls), 5);
    let by_reason = report.skipped_by_reason();
    assert_eq!(by_reason.get("in_use"), Some(&2));
    assert_eq!(by_reason.get("gone"), Some(&1));
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].image.id, "sha256:3");
    assert_eq!(
        report.failed[0].kind,
        cascade_classify::Disposition::Unexpected
    );
    assert!(report.has_failures());
    assert_eq!(events.len(), 1, "only the 500 is reported: {events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::Warning);
    assert_eq!(
        event.tags.get("source").map(String::as_str),
        Some("dangling_image_remove")
    );
    assert_eq!(
        event.extra.get("imageId"),
        Some(&serde_json::Value::from("sha256:3"))
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("sha256:3")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("DEBUG") && l.contains("sha256:1")),
        "{logs}"
    );
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") && (l.contains("sha256:1") || l.contains("sha256:2"))),
        "{logs}"
    );
}

#[test]
fn a_failed_scan_is_reported_once_and_removes_nothing() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_error = Some(DockerError::status(500, "boom")));
    let ((report, events), logs) = with_logs(|| pass(&fake, config(Duration::ZERO)));
    assert_eq!(report.scan_error.as_deref(), Some("boom"));
    assert!(report.has_failures());
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, Level::Error);
    assert_eq!(
        events[0].tags.get("source").map(String::as_str),
        Some("dangling_image_cleanup_scan")
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("scan failed")),
        "{logs}"
    );
}

#[test]
fn every_call_has_a_deadline() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.list_delay = Duration::from_secs(3600));
    let cfg = SweepConfig {
        call_timeout: Duration::from_secs(5),
        ..config(Duration::ZERO)
    };
    let (report, events) = with_sentry(|| async {
        let started = tokio::time::Instant::now();
        let report = sweep(&fake, cfg.clone())
            .run(&CancellationToken::new())
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        report
    });
    assert!(
        report
            .scan_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{report:?}"
    );
    assert_eq!(
        events[0].tags.get("disposition").map(String::as_str),
        Some("transient")
    );

    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| s.remove_hangs = true);
    let (report, events) = pass(
        &fake,
        SweepConfig {
            call_timeout: Duration::from_secs(5),
            ..config(Duration::ZERO)
        },
    );
    assert_eq!(report.failed.len(), 2);
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.kind == cascade_classify::Disposition::Transient)
    );
    assert_eq!(events.len(), 2);
}

#[test]
fn removal_concurrency_is_bounded_and_used() {
    for limit in [1usize, 4] {
        let fake = Arc::new(FakeDocker::with_images(
            (0..20).map(|i| ours(&format!("sha256:{i:02}"))).collect(),
        ));
        fake.edit(|s| s.remove_delay = Duration::from_millis(10));
        let cfg = SweepConfig {
            concurrency: Concurrency::Fixed(NonZeroUsize::new(limit).expect("nz")),
            ..config(Duration::ZERO)
        };
        let (report, _) = pass(&fake, cfg);
        assert_eq!(report.removed.len(), 20);
        assert_eq!(fake.edit(|s| s.max_removes_in_flight), limit);
    }
}

#[test]
fn dry_run_removes_nothing_and_explains() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:old"),
        image("sha256:young", &[("cascade.managed", "true")], &[], 10),
        image("sha256:other", &[("cascade.managed", "no")], &[], 3600),
    ]));
    let cfg = SweepConfig {
        dry_run: true,
        min_age: Duration::from_secs(60),
        ..SweepConfig::default()
    };
    let (report, _) = pass(&fake, cfg);
    assert_eq!(fake.edit(|s| s.remove_calls), 0);
    assert!(report.removed.is_empty());
    assert_eq!(ids(&report.would_remove), vec!["sha256:old"]);
    let reasons = reasons(&report);
    assert_eq!(
        reasons,
        vec![
            ("sha256:young", "too_young"),
            ("sha256:other", "failed_verification")
        ]
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["skipped"][0]["reason"], "too_young");
    assert_eq!(json["would_remove"][0]["id"], "sha256:old");
}

#[test]
fn summary_is_logged_only_when_something_was_removed() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    let ((report, _), logs) = with_logs(|| pass(&fake, config(Duration::ZERO)));
    assert_eq!(report.reclaimed_bytes, 2000);
    let summary: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("removed 2 images"))
        .collect();
    assert_eq!(summary.len(), 1, "{logs}");
    assert!(summary[0].contains("reclaimed 2000 bytes"), "{logs}");

    let ((_, _), logs) = with_logs(|| pass(&fake, config(Duration::ZERO)));
    assert!(
        !logs.contains("INFO"),
        "an empty pass logs no summary: {logs}"
    );
}

#[test]
fn cancelling_stops_new_removals_but_finishes_sent_ones() {
    let fake = Arc::new(FakeDocker::with_images(
        (0..10).map(|i| ours(&format!("sha256:{i}"))).collect(),
    ));
    fake.edit(|s| s.remove_delay = Duration::from_secs(1));
    let cfg = SweepConfig {
        concurrency: Concurrency::Fixed(NonZeroUsize::new(2).expect("nz")),
        ..config(Duration::ZERO)
    };
    let (report, _) = with_sentry(|| async {
        let sweep = Arc::new(sweep(&fake, cfg));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (sweep, cancel) = (Arc::clone(&sweep), cancel.clone());
            async move { sweep.run(&cancel).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await; // two rounds of two started
        cancel.cancel();
        task.await.expect("task")
    });
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert_eq!(report.skipped_by_reason().get("cancelled"), Some(&6));
    assert_eq!(fake.removed().len(), 4);
}

#[test]
fn the_plan_explains_labelled_images_that_are_not_candidates() {
    let mut child = image(
        "sha256:child",
        &[("cascade.managed", "true")],
        &["child:1"],
        3600,
    );
    child.parent_id = "sha256:parent".into();
    let mut grandchild = ours("sha256:old");
    grandchild.parent_id = "sha256:not-ours".into();
    let fake = Arc::new(FakeDocker::with_images(vec![grandchild]));
    fake.edit(|s| {
        s.tagged = vec![
            child,
            image(
                "sha256:current",
                &[("cascade.managed", "true")],
                &["cascade-snapshot-p-1:latest"],
                3600,
            ),
        ];
        s.inspectable = vec![
            image("sha256:parent", &[("cascade.managed", "true")], &[], 3600),
            image("sha256:not-ours", &[], &[], 3600),
        ];
    });
    let cfg = SweepConfig {
        dry_run: true,
        ..config(Duration::ZERO)
    };
    let (report, _) = pass(&fake, cfg);
    assert_eq!(ids(&report.would_remove), vec!["sha256:old"]);
    let reasons = reasons(&report);
    assert_eq!(
        reasons,
        vec![
            ("sha256:parent", "has_children"),
            ("sha256:child", "tagged"),
            ("sha256:current", "tagged")
        ],
        "an unlabelled parent is not mentioned"
    );
    // One listing, by the labels only.
    let seen = fake.edit(|s| s.filters_seen.clone());
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert_eq!(seen[0]["label"], vec!["cascade.managed=true".to_string()]);
    assert_eq!(report.listed, 1, "only candidates count as listed");

    // A real pass asks for dangling images, and never lists tagged ones.
    let real = pass(&fake, config(Duration::ZERO)).0;
    assert_eq!(ids(&real.removed), vec!["sha256:old"]);
    assert!(fake.edit(|s| s.filters_seen[1].contains_key("dangling")));
}

#[test]
fn reclaimed_space_is_measured_when_the_data_root_is_visible() {
    let dir = std::env::temp_dir();
    for (path, expected) in [
        (Some(dir.clone()), ReclaimedSource::Filesystem),
        (
            Some(dir.join("no-such-dir-cascade")),
            ReclaimedSource::ImageSizes,
        ),
        (None, ReclaimedSource::ImageSizes),
    ] {
        let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
        fake.edit(|s| s.data_root = path.clone());
        let cfg = config(Duration::ZERO);
        let (report, _) = pass(&fake, cfg);
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.reclaimed_source, expected, "{path:?}");
        assert_eq!(report.removed_image_bytes, 1000);
        if expected == ReclaimedSource::ImageSizes {
            assert_eq!(report.reclaimed_bytes, 1000);
        }
    }

    // Off: no data root is asked for.
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.data_root = Some(dir.clone()));
    let cfg = SweepConfig {
        measure_reclaimed: false,
        ..config(Duration::ZERO)
    };
    let (report, _) = pass(&fake, cfg);
    assert_eq!(report.reclaimed_source, ReclaimedSource::ImageSizes);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl SweepProgress for Recorder {
    fn started(&self, images: usize, bytes: u64) {
        self.0
            .lock()
            .expect("r")
            .push(format!("started {images} {bytes}"));
    }
    fn advanced(&self, image: &ImageRef, removed: bool) {
        self.0
            .lock()
            .expect("r")
            .push(format!("{} {removed}", image.id));
    }
    fn finished(&self, report: &SweepReport) {
        self.0
            .lock()
            .expect("r")
            .push(format!("finished {}", report.removed.len()));
    }
}

#[test]
fn progress_sees_every_removal_as_it_ends() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:a"),
        ours("sha256:b"),
    ]));
    fake.edit(|s| {
        s.remove_errors
            .insert("sha256:b".into(), DockerError::status(409, "in use"))
    });
    let cfg = SweepConfig {
        concurrency: Concurrency::Fixed(NonZeroUsize::new(1).expect("nz")),
        ..config(Duration::ZERO)
    };
    let recorder = Recorder::default();
    with_sentry(|| async {
        sweep(&fake, cfg)
            .run_with_progress(&CancellationToken::new(), &recorder)
            .await
    });
    assert_eq!(
        recorder.0.into_inner().expect("r"),
        vec![
            "started 2 2000",
            "sha256:a true",
            "sha256:b false",
            "finished 1"
        ]
    );
}

/// What a pass with min age 1 h removes when the engine's clock reads
/// `engine_time`: one image created now and one 90 minutes ago, on this
/// host's clock.
fn removed_with_engine_clock(engine_time: Option<i64>) -> Vec<String> {
    let ours = [("cascade.managed", "true")];
    let fake = Arc::new(FakeDocker::with_images(vec![
        image("sha256:just-made", &ours, &[], 0),
        image("sha256:ninety-minutes", &ours, &[], 90 * 60),
    ]));
    fake.edit(|s| s.engine_time = engine_time);
    pass(&fake, config(Duration::from_secs(3600)));
    fake.removed()
}

#[test]
fn ages_are_measured_on_the_engines_clock() {
    const HOUR: i64 = 3600;
    assert_eq!(
        removed_with_engine_clock(None),
        vec!["sha256:ninety-minutes"],
        "an engine that does not say: this host's clock"
    );
    assert_eq!(
        removed_with_engine_clock(Some(now())),
        vec!["sha256:ninety-minutes"]
    );
    assert_eq!(
        removed_with_engine_clock(Some(now() + 2 * HOUR)),
        vec!["sha256:just-made", "sha256:ninety-minutes"],
        "the engine is 2 h ahead: both are old on its clock"
    );
    assert_eq!(
        removed_with_engine_clock(Some(now() - 2 * HOUR)),
        Vec::<String>::new(),
        "the engine is 2 h behind: both are young on its clock"
    );
}

// ---- a removal never takes an image tagged since the listing ----

#[test]
fn an_image_tagged_after_the_listing_keeps_its_tag_and_loses_only_the_removal_name() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:retagged"),
        ours("sha256:plain"),
    ]));
    fake.edit(|s| {
        s.tag_after_listing = vec![("sha256:retagged".into(), "snap:1".into())];
    });
    let (report, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(ids(&report.removed), ["sha256:plain"]);
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(report.skipped[0].image.id, "sha256:retagged");
    assert_eq!(
        report.skipped[0].reason,
        SkipReason::Changed {
            detail: "tagged again since the listing: the engine took only the janitor's removal name off it".into()
        }
    );
    assert_eq!(report.skipped_by_reason().get("changed"), Some(&1));
    assert!(!report.has_failures() && events.is_empty(), "{events:?}");
    fake.edit(|s| {
        let mut tagged = s.tag_calls.clone();
        tagged.sort();
        assert_eq!(
            tagged,
            [
                (
                    "sha256:plain".to_string(),
                    "localhost/cascade-janitor-removing:plain".to_string()
                ),
                (
                    "sha256:retagged".to_string(),
                    "localhost/cascade-janitor-removing:retagged".to_string()
                ),
            ],
            "each named for its removal"
        );
        let mut names = s.removal_names.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "localhost/cascade-janitor-removing:plain",
                "localhost/cascade-janitor-removing:retagged"
            ],
            "removed by name, never by ID"
        );
        assert!(s.inspected.is_empty(), "no re-check is needed");
        assert_eq!(
            s.images[0].repo_tags,
            ["snap:1"],
            "kept with its tag, without the removal name"
        );
    });
}

#[test]
fn an_image_gone_before_its_removal_is_gone() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    // Listed, then removed by someone else before it was named.
    let listed = fake.edit(|s| std::mem::take(&mut s.images));
    let racer = Arc::new(ListThenVanish {
        listed,
        inner: Arc::clone(&fake),
    });
    let (report, events) = with_sentry(|| async {
        DanglingImageSweep::new(racer as Arc<dyn DockerImages>, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(
        report.skipped_by_reason().get("gone"),
        Some(&1),
        "{report:#?}"
    );
    assert!(report.removed.is_empty() && !report.has_failures());
    assert!(events.is_empty());
    assert_eq!(
        fake.edit(|s| s.remove_calls),
        0,
        "no DELETE after a 404 tag"
    );
}

/// Lists `listed` as candidates, but the engine (`inner`) no longer has them.
struct ListThenVanish {
    listed: Vec<ListedImage>,
    inner: Arc<FakeDocker>,
}

#[async_trait::async_trait]
impl DockerImages for ListThenVanish {
    async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        self.inner.engine_facts().await
    }
    async fn list_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ListedImage>, DockerError> {
        if filters.contains_key("reference") {
            return self.inner.list_images(filters).await;
        }
        Ok(self.listed.clone())
    }
    async fn list_all_images(&self) -> Result<Vec<ListedImage>, DockerError> {
        self.inner.list_all_images().await
    }
    async fn inspect_image(&self, id: &str) -> Result<Option<ListedImage>, DockerError> {
        self.inner.inspect_image(id).await
    }
    async fn images_used_by_containers(
        &self,
    ) -> Result<std::collections::HashSet<String>, DockerError> {
        self.inner.images_used_by_containers().await
    }
    async fn tag_image(&self, id: &str, repository: &str, tag: &str) -> Result<(), DockerError> {
        self.inner.tag_image(id, repository, tag).await
    }
    async fn remove_image(&self, name: &str) -> Result<RemovalAnswer, DockerError> {
        self.inner.remove_image(name).await
    }
}

#[test]
fn containerd_store_removes_by_the_dangling_name_and_a_retagged_image_is_gone() {
    let fake = Arc::new(FakeDocker::with_images(vec![
        ours("sha256:retagged"),
        ours("sha256:plain"),
    ]));
    fake.edit(|s| {
        s.containerd = true;
        s.tag_after_listing = vec![("sha256:retagged".into(), "snap:1".into())];
    });
    let (report, events) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert_eq!(ids(&report.removed), ["sha256:plain"]);
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert_eq!(
        (
            report.skipped[0].image.id.as_str(),
            report.skipped[0].reason.as_str()
        ),
        ("sha256:retagged", "gone")
    );
    assert!(!report.has_failures() && events.is_empty(), "{events:?}");
    assert_eq!(
        report.reclaimed_source,
        ReclaimedSource::ContainerdImageSizes,
        "an estimate there, and said so"
    );
    fake.edit(|s| {
        let mut names = s.removal_names.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "moby-dangling@sha256:plain",
                "moby-dangling@sha256:retagged"
            ]
        );
        assert!(
            s.inspected.is_empty(),
            "the conditional delete needs no re-check"
        );
        assert!(s.images.iter().any(|i| i.id == "sha256:retagged"));
    });
}

#[test]
fn without_knowing_the_engine_nothing_is_listed_or_removed() {
    let fake = Arc::new(FakeDocker::with_images(vec![ours("sha256:a")]));
    fake.edit(|s| s.facts_error = Some(DockerError::status(500, "info failed")));
    let (report, _) = with_sentry(|| async {
        sweep(&fake, config(Duration::ZERO))
            .run(&CancellationToken::new())
            .await
    });
    assert!(report.removed.is_empty(), "{report:#?}");
    assert_eq!(report.scan_error.as_deref(), Some("info failed"));
    assert_eq!(report.engine, None);
    assert_eq!(fake.edit(|s| (s.remove_calls, s.tag_calls.len())), (0, 0));
    assert_eq!(
        fake.lists(),
        0,
        "nothing is judged before the engine is known"
    );
}

/// `n` labelled dangling images on an engine answering each removal after
/// `delay`, plus `load` for every other removal in flight.
fn paced_engine(n: usize, delay: Duration, load: Duration) -> Arc<FakeDocker> {
    let fake = Arc::new(FakeDocker::with_images(
        (0..n).map(|i| ours(&format!("sha256:{i:03}"))).collect(),
    ));
    fake.edit(|s| {
        s.remove_delay = delay;
        s.remove_load_delay = load;
    });
    fake
}

fn with_concurrency(concurrency: Concurrency) -> SweepConfig {
    SweepConfig {
        concurrency,
        ..config(Duration::ZERO)
    }
}

fn adaptive_up_to(max: usize) -> Concurrency {
    Concurrency::Adaptive {
        max: Some(NonZeroUsize::new(max).expect("nz")),
    }
}

#[test]
fn adaptive_keeps_few_in_flight_when_the_engine_slows_with_our_load() {
    // Each removal in flight makes every other one 10 ms slower: two at
    // once already doubles the latency the router's calls would see too.
    let fake = paced_engine(200, Duration::from_millis(10), Duration::from_millis(10));
    let (report, _) = pass(&fake, with_concurrency(adaptive_up_to(8)));
    assert_eq!(report.removed.len(), 200, "every image still removed");
    assert!(report.failed.is_empty() && report.skipped.is_empty());
    let pace = report.removal_pace.expect("removals ran");
    // At 2 in flight latency is twice the baseline, the shrink threshold:
    // the window probes one step past it (3), backs off, and averages 2.
    // Paused time and the fake's latency model make these exact.
    let in_flight = fake.edit(|s| s.max_removes_in_flight);
    assert_eq!(in_flight, 3, "{pace:?}");
    assert_eq!(pace.window_max, in_flight);
    assert_eq!(pace.window_mean.get(), 2.0, "{pace:?}");
    assert_eq!(pace.mode, crate::pace::PaceMode::Adaptive);

    // The same engine takes 8 at once if told to: the limit above is the
    // controller's doing.
    let fake = paced_engine(200, Duration::from_millis(10), Duration::from_millis(10));
    let fixed = Concurrency::Fixed(NonZeroUsize::new(8).expect("nz"));
    let (report, _) = pass(&fake, with_concurrency(fixed));
    assert_eq!(report.removed.len(), 200);
    assert_eq!(fake.edit(|s| s.max_removes_in_flight), 8);
    let pace = report.removal_pace.expect("removals ran");
    assert_eq!((pace.window_max, pace.pauses), (8, 0));
    assert_eq!(pace.mode, crate::pace::PaceMode::Fixed);
}

#[test]
fn adaptive_reaches_its_maximum_when_latency_stays_flat() {
    let fake = paced_engine(100, Duration::from_millis(10), Duration::ZERO);
    let (report, _) = pass(&fake, with_concurrency(adaptive_up_to(8)));
    assert_eq!(report.removed.len(), 100);
    assert_eq!(fake.edit(|s| s.max_removes_in_flight), 8);
    let pace = report.removal_pace.expect("removals ran");
    assert_eq!((pace.window_max, pace.pauses), (8, 0));
    assert_eq!(pace.paused, Duration::ZERO);
}

#[test]
fn auto_takes_its_maximum_from_the_image_store() {
    for (containerd, max) in [
        (false, crate::pace::CLASSIC_MAX_WINDOW),
        (true, crate::pace::CONTAINERD_BURST),
    ] {
        let fake = paced_engine(100, Duration::from_millis(10), Duration::ZERO);
        fake.edit(|s| s.containerd = containerd);
        let (report, _) = pass(&fake, with_concurrency(Concurrency::AUTO));
        assert_eq!(report.removed.len(), 100);
        assert_eq!(
            fake.edit(|s| s.max_removes_in_flight),
            max.get(),
            "containerd: {containerd}"
        );
    }
}

#[test]
fn fixed_never_exceeds_its_number_nor_pauses_whatever_the_latency() {
    for n in [1usize, 3] {
        let fake = paced_engine(30, Duration::from_millis(10), Duration::from_millis(50));
        fake.edit(|s| s.slow_from = Some((10, Duration::from_millis(500))));
        let fixed = Concurrency::Fixed(NonZeroUsize::new(n).expect("nz"));
        let (report, _) = pass(&fake, with_concurrency(fixed));
        assert_eq!(report.removed.len(), 30);
        assert_eq!(fake.edit(|s| s.max_removes_in_flight), n);
        assert_eq!(report.removal_pace.expect("ran").pauses, 0);
    }
}

#[test]
fn an_engine_that_slows_mid_pass_gets_pauses_between_our_removals() {
    // Fast at first, then ten times slower for good (another client).
    let fake = paced_engine(60, Duration::from_millis(10), Duration::ZERO);
    fake.edit(|s| s.slow_from = Some((30, Duration::from_millis(100))));
    let ((report, ended), _) = with_sentry(|| async {
        let report = sweep(&fake, with_concurrency(adaptive_up_to(4)))
            .run(&CancellationToken::new())
            .await;
        (report, tokio::time::Instant::now())
    });
    assert_eq!(report.removed.len(), 60);
    let pace = report.removal_pace.expect("removals ran");
    // From the 30th removal on, every one at window 1 is paced: 25 pauses
    // of the excess latency, 1.78 s of idle time left to other clients.
    assert_eq!(pace.pauses, 25, "{pace:?}");
    assert_eq!(pace.paused, Duration::from_nanos(1_781_275_313), "{pace:?}");
    let last_answer = fake
        .edit(|s| s.removes_started.last().copied())
        .expect("removals")
        + Duration::from_millis(100);
    assert_eq!(ended, last_answer, "no pause after the last removal");
    // A pause is idle time: after it, one removal at a time, and the gap
    // between an answer and the next request is the pause itself.
    let starts = fake.edit(|s| s.removes_started.clone());
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        longest > Duration::from_millis(100),
        "some start waited beyond the previous removal's latency: {gaps:?}"
    );
    assert!(pace.paused <= crate::pace::MAX_PAUSE * pace.pauses as u32);
}

#[test]
fn cancelling_during_a_pause_reports_the_rest_at_once() {
    let fake = paced_engine(20, Duration::from_millis(10), Duration::ZERO);
    // Every removal after the first takes a second: paced at window 1.
    fake.edit(|s| s.slow_from = Some((1, Duration::from_secs(1))));
    let (report, _) = with_sentry(|| async {
        let sweep = Arc::new(sweep(&fake, with_concurrency(adaptive_up_to(4))));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (sweep, cancel) = (Arc::clone(&sweep), cancel.clone());
            async move { sweep.run(&cancel).await }
        });
        // Wait until a pause is under way: three removals answered and no
        // fourth asked for yet.
        while fake.edit(|s| s.removed.len()) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(fake.edit(|s| s.remove_calls), 3, "pausing, not removing");
        cancel.cancel();
        let cancelled_at = tokio::time::Instant::now();
        let report = task.await.expect("task");
        assert_eq!(
            cancelled_at.elapsed(),
            Duration::ZERO,
            "did not sit out the pause"
        );
        report
    });
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert_eq!(report.skipped_by_reason().get("cancelled"), Some(&17));
    assert_eq!(fake.edit(|s| s.remove_calls), 3);
}

#[test]
fn transient_failures_slow_the_pass_but_every_image_is_removed_or_reported() {
    let fake = paced_engine(40, Duration::from_millis(10), Duration::ZERO);
    fake.edit(|s| {
        for i in [5, 6, 7, 20] {
            s.remove_errors.insert(
                format!("sha256:{i:03}"),
                DockerError::status(503, "engine busy"),
            );
        }
    });
    let (report, _) = pass(&fake, with_concurrency(adaptive_up_to(4)));
    assert_eq!(report.removed.len(), 36);
    assert_eq!(report.failed.len(), 4);
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.kind == cascade_classify::Disposition::Transient)
    );
    let pace = report.removal_pace.expect("removals ran");
    // The failures bring the window down to 1, and exactly one pause
    // follows (paused time and the fake make its length exact).
    assert_eq!(
        (pace.pauses, pace.paused),
        (1, Duration::from_millis(1010)),
        "failures at window 1 pause: {pace:?}"
    );
}

#[test]
fn auto_on_the_containerd_store_sends_bursts_with_a_rest_between_them() {
    let burst = crate::pace::CONTAINERD_BURST.get();
    let n = 2 * burst + 6;
    let fake = paced_engine(n, Duration::from_millis(10), Duration::ZERO);
    fake.edit(|s| s.containerd = true);
    let ((report, ended), _) = with_sentry(|| async {
        let report = sweep(&fake, with_concurrency(Concurrency::AUTO))
            .run(&CancellationToken::new())
            .await;
        (report, tokio::time::Instant::now())
    });
    assert_eq!(report.removed.len(), n);
    let starts = fake.edit(|s| s.removes_started.clone());
    let t0 = starts[0];
    let offsets: Vec<Duration> = starts.iter().map(|s| *s - t0).collect();
    // Each burst answers after 10 ms and rests 10 ms (BURST_REST = 1.0).
    let rest = Duration::from_millis(10).mul_f64(crate::pace::BURST_REST);
    let second = Duration::from_millis(10) + rest;
    let mut expected = vec![Duration::ZERO; burst];
    expected.extend(vec![second; burst]);
    expected.extend(vec![second * 2; 6]);
    assert_eq!(offsets, expected);
    assert_eq!(fake.edit(|s| s.max_removes_in_flight), burst);
    let pace = report.removal_pace.expect("removals ran");
    assert_eq!(pace.mode, crate::pace::PaceMode::Bursts);
    assert_eq!((pace.pauses, pace.paused), (2, rest * 2));
    assert_eq!(
        ended,
        t0 + second * 2 + Duration::from_millis(10),
        "no rest after the last burst"
    );
}
