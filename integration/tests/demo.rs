//! `cargo xtask demo` ends as the scope rule says: of its zoo, only the
//! leaked snapshot and the old labelled leftover are removed; look-alike
//! labels, unlabelled workloads, tagged, in-use and young images stay.

use std::collections::BTreeSet;

use anyhow::Result;
use integration::demo::{self, Fate};
use integration::engine::all_image_ids;
use integration::{NestedEngine, janitor_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_zoo_ends_as_the_scope_rule_says() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let mut shown = Vec::new();
    let (outcomes, steps) = demo::run(
        &engine.docker,
        &engine.host(),
        &janitor_binary(),
        &mut shown,
    )
    .await?;
    let shown = String::from_utf8(shown)?;

    for step in &steps {
        assert_eq!(
            step.code, 0,
            "{}\n{}{}",
            step.command, step.stdout, step.stderr
        );
    }
    let names = |fate: Fate| -> Vec<&str> {
        outcomes
            .iter()
            .filter(|o| o.fate == fate)
            .map(|o| o.image.name)
            .collect()
    };
    assert_eq!(
        names(Fate::Removed),
        ["snapshot-1", "build-leftover"],
        "{shown}"
    );
    assert_eq!(
        names(Fate::Kept),
        [
            "mysql",
            "mysql-old",
            "loki",
            "loki-old",
            "router-base",
            "snapshot-2",
            "managed-false",
            "managed-True",
            "manage-true",
            "in-use",
            "young",
        ],
        "{shown}"
    );
    for o in &outcomes {
        assert_eq!(o.fate, o.image.expected, "{}: {shown}", o.image.name);
    }
    // The janitor's own plan agreed, image by image, before anything went.
    let plan: serde_json::Value = serde_json::from_str(&steps[0].stdout)?;
    let planned: BTreeSet<&str> = plan["would_remove"]
        .as_array()
        .expect("would_remove")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    let removed: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o.fate == Fate::Removed)
        .map(|o| o.image.id.as_str())
        .collect();
    assert_eq!(planned, removed);
    // Nothing outside the zoo went either (the worker's and in-use
    // containers' images included).
    let zoo: BTreeSet<String> = outcomes.iter().map(|o| o.image.id.clone()).collect();
    let left = all_image_ids(&engine.docker).await?;
    assert!(
        zoo.iter()
            .filter(|id| !removed.contains(id.as_str()))
            .all(|id| left.contains(id)),
        "{shown}"
    );
    assert!(!shown.contains("NOT what the rule says"), "{shown}");
    for line in [
        "== doctor",
        "== prune --dry-run",
        "== prune: the sweep",
        "== what happened to each image",
    ] {
        assert!(shown.contains(line), "missing `{line}`:\n{shown}");
    }
    engine.finish().await
}
