//! What a sweep takes from a real engine besides its images, through the
//! fault proxy: the engine's clock (ages are the engine's), and an event
//! stream held open with nothing on it (the follower re-subscribes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cascade_cleanup::{
    DanglingImageSweep, DockerImages, EngineEvents, EventOptions, EventTrigger, LoopOptions,
    SweepConfig, run_loop,
};
use integration::engine::all_image_ids;
use integration::fixtures::{self, ImageSpec};
use integration::proxy::{Fault, FaultProxy};
use integration::{NestedEngine, stop_loop, wait_until};
use tokio_util::sync::CancellationToken;

const HOUR: i64 = 3600;

/// Which of `ids` are still on the engine, by fixture name.
async fn present(engine: &NestedEngine, ids: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let all = all_image_ids(&engine.docker).await?;
    Ok(ids
        .iter()
        .filter(|(_, id)| all.contains(*id))
        .map(|(name, _)| name.clone())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ages_are_measured_on_the_engines_clock() -> Result<()> {
    let engine = NestedEngine::start().await?;
    // On this host's clock: just made, 90 minutes and 4 hours old; min
    // age 1 h.
    let ids = fixtures::load(
        &engine.docker,
        &[
            ImageSpec::new("just-made").ours().age(Duration::ZERO),
            ImageSpec::new("ninety-minutes")
                .ours()
                .age(Duration::from_secs(90 * 60)),
            ImageSpec::new("four-hours")
                .ours()
                .age(Duration::from_secs(4 * 3600)),
        ],
    )
    .await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    let docker = cascade_engine::connect(&proxy.host(), Duration::from_secs(10)).await?;
    let sweep = DanglingImageSweep::new(
        Arc::new(docker) as Arc<dyn DockerImages>,
        SweepConfig {
            min_age: Duration::from_secs(3600),
            ..SweepConfig::default()
        },
    );
    let young = vec!["just-made".to_string(), "ninety-minutes".to_string()];

    // The engine's clock 2 h behind: 90 minutes old here is young there and
    // stays; 4 hours old here is 2 hours old there and goes.
    proxy.set(Fault::ShiftClock(-2 * HOUR));
    let report = sweep.run(&CancellationToken::new()).await;
    assert_eq!(report.skipped_by_reason().get("too_young"), Some(&2));
    assert_eq!(present(&engine, &ids).await?, young);

    // The engine's clock 2 h ahead: just made here is 2 hours old there;
    // both remaining images go.
    proxy.set(Fault::ShiftClock(2 * HOUR));
    let report = sweep.run(&CancellationToken::new()).await;
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert_eq!(present(&engine, &ids).await?, Vec::<String>::new());
    drop(proxy);
    engine.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_event_stream_is_resubscribed() -> Result<()> {
    let engine = NestedEngine::start().await?;
    let proxy = FaultProxy::start(&engine.socket)?;
    proxy.set(Fault::SilentEvents);
    let client = cascade_engine::EngineClient::new(&proxy.host(), Duration::from_secs(10))?;
    let sweep = DanglingImageSweep::new(
        Arc::new(client.clone()) as Arc<dyn DockerImages>,
        SweepConfig::default(),
    );
    let mut options = EventOptions::default();
    options.idle_limit = Duration::from_secs(2);
    let options = LoopOptions {
        events: Some(EventTrigger {
            source: Arc::new(client) as Arc<dyn EngineEvents>,
            options,
        }),
        ..LoopOptions::every(Duration::from_secs(3600))
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_loop(Arc::new(sweep), options, cancel.clone()));
    // The first subscription got its 200 and then nothing, held open: only
    // the idle limit can end it.
    wait_until(Duration::from_secs(30), "a second subscription", || async {
        proxy.subscriptions() >= 2
    })
    .await?;
    stop_loop(&cancel, task, Duration::from_secs(10)).await;
    drop(proxy);
    engine.finish().await
}
