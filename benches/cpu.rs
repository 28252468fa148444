//! Pure CPU costs of a sweep, without an engine: decoding a `/images/json`
//! payload as bollard does, the janitor's own scope check over the decoded
//! images (`[ref:scope_invariant]`), and classifying failed calls.
//!
//! The payload repeats the entries recorded from Docker 20.10 in
//! `data/images.json` (one labelled dangling image, one look-alike), each
//! with its own ID, so the bytes have the engine's exact shape.

use std::collections::HashMap;
use std::hint::black_box;

use cascade_classify::{classify, classify_status};
use cascade_cleanup::ListedImage;
use cascade_engine::listed_image;
use cascade_scope::{ImageFacts, Scope};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const RECORDED: &str = include_str!("data/images.json");
const SIZES: [usize; 3] = [1_000, 10_000, 50_000];

fn payload(n: usize) -> Vec<u8> {
    let recorded: Vec<serde_json::Value> =
        serde_json::from_str(RECORDED).expect("data/images.json is a JSON array");
    let images: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut image = recorded[i % recorded.len()].clone();
            image["Id"] = format!("sha256:{i:064x}").into();
            image
        })
        .collect();
    serde_json::to_vec(&images).expect("serialise")
}

fn decode(bytes: &[u8]) -> Vec<ListedImage> {
    let summaries: Vec<bollard::models::ImageSummary> =
        serde_json::from_slice(bytes).expect("decode");
    summaries.into_iter().map(listed_image).collect()
}

fn cpu_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in SIZES {
        let bytes = payload(n);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &bytes, |b, bytes| {
            b.iter(|| decode(black_box(bytes)))
        });
    }
    group.finish();

    let scope = Scope::default();
    let mut group = c.benchmark_group("verify");
    for n in SIZES {
        let images = decode(&payload(n));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &images, |b, images| {
            b.iter(|| {
                images
                    .iter()
                    .filter(|i| {
                        scope
                            .check(&ImageFacts {
                                id: &i.id,
                                labels: &i.labels,
                                repo_tags: &i.repo_tags,
                            })
                            .is_ok()
                    })
                    .count()
            })
        });
    }
    group.finish();

    let errors: Vec<bollard::errors::Error> = [404u16, 409, 500, 503, 400, 429]
        .into_iter()
        .map(
            |status_code| bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: "No such image: sha256:0123".to_string(),
            },
        )
        .chain([bollard::errors::Error::RequestTimeoutError])
        .collect();
    let statuses: HashMap<u16, ()> = [200u16, 404, 409, 500, 502, 503, 504, 408, 429, 400]
        .into_iter()
        .map(|s| (s, ()))
        .collect();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(errors.len() as u64));
    group.bench_function("bollard_errors", |b| {
        b.iter(|| {
            errors
                .iter()
                .map(|e| classify(black_box(e)))
                .collect::<Vec<_>>()
        })
    });
    group.throughput(Throughput::Elements(statuses.len() as u64));
    group.bench_function("statuses", |b| {
        b.iter(|| {
            statuses
                .keys()
                .map(|s| classify_status(black_box(*s)))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, cpu_benches);
criterion_main!(benches);
