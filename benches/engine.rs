//! Scan and sweep cost against a real (nested) engine.
//!
//! - `scan/N`: list, decode, verify and age-check N labelled dangling
//!   images (the dry-run path); nothing is removed.
//! - `sweep/N`: a full sweep with removal. The identical set is loaded
//!   again before every iteration, outside the timed part, so every
//!   iteration removes the same N images.
//!
//! `CASCADE_BENCH_SIZES` (comma-separated, default `1000,10000`) picks N;
//! CI runs this once per size with `cargo test --benches` as a smoke pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade_cleanup::{DanglingImageSweep, DockerImages, SweepConfig};
use cascade_engine::EngineConnection;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use integration::NestedEngine;
use integration::bench::seed::SeedSet;
use tokio_util::sync::CancellationToken;

const DECOYS: usize = 1_000;

fn sizes() -> Vec<usize> {
    std::env::var("CASCADE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1_000, 10_000])
}

fn sweep(engine: &NestedEngine, dry_run: bool) -> DanglingImageSweep {
    let docker: Arc<dyn DockerImages> = Arc::new(EngineConnection::new(engine.docker.clone()));
    DanglingImageSweep::new(
        docker,
        SweepConfig {
            dry_run,
            ..SweepConfig::default()
        },
    )
}

fn engine_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let engine = rt
        .block_on(NestedEngine::start())
        .expect("nested engine; run `cargo xtask dind-image` first");
    let token = CancellationToken::new();
    let sizes = sizes();

    let mut scan = c.benchmark_group("scan");
    scan.sample_size(10).sampling_mode(SamplingMode::Flat);
    for &n in &sizes {
        let set = SeedSet::new(n, DECOYS).expect("seed archive");
        rt.block_on(set.restore(&engine.docker)).expect("seed");
        let dry = sweep(&engine, true);
        scan.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt).iter(|| async {
                let report = dry.run(&token).await;
                assert_eq!(report.would_remove.len(), n, "{report:?}");
                report
            })
        });
    }
    scan.finish();

    let mut group = c.benchmark_group("sweep");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    for &n in &sizes {
        let set = SeedSet::new(n, DECOYS).expect("seed archive");
        let real = sweep(&engine, false);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| {
                let (set, real, engine, token) = (&set, &real, &engine, &token);
                async move {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        set.restore(&engine.docker).await.expect("re-seed");
                        let started = Instant::now();
                        let report = real.run(token).await;
                        timed += started.elapsed();
                        assert_eq!(report.removed.len(), n, "{report:?}");
                    }
                    timed
                }
            })
        });
    }
    group.finish();
    rt.block_on(engine.finish()).expect("host engine untouched");
}

criterion_group!(benches, engine_benches);
criterion_main!(benches);
