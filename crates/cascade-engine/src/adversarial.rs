//! Property tests over every engine answer the janitor parses: the image
//! list, an image's inspect, the container list, `/info`, `/version` and
//! an event. Generated shapes mix real ones with adversarial ones (`null`
//! vs `[]` vs missing fields, `<none>:<none>` look-alikes, odd IDs, numbers
//! out of range, keys given twice). Checked:
//!
//! - nothing panics, whatever the bytes;
//! - an image entry malformed in any field the scope rule reads (labels,
//!   tags, ID, creation time), or used by a container the listing cannot
//!   say clearly, is never removed: each decoded list goes through the
//!   janitor's own sweep (`Scope::check` and the sweep's verdict) on the
//!   fake engine, which records every image the sweep names or removes;
//! - a list whose every entry is well-formed is read (no false refusal).
//!   `[ref:scope_invariant]`

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cascade_cleanup::fake::FakeDocker;
use cascade_cleanup::{DanglingImageSweep, DockerImages, ListedImage, SweepConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::list::ListDecoder;

/// Runs a future to completion on a current-thread runtime with time.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The `n`th well-formed image ID.
fn full_id(n: usize) -> String {
    format!("sha256:{:064x}", n + 0xabc)
}

/// How an entry's `Id` is written.
#[derive(Debug, Clone)]
enum IdShape {
    /// `sha256:` and 64 hex: well-formed.
    Full,
    /// 64 hex without `sha256:` (Podman's spelling): well-formed.
    Bare,
    /// Anything else, as JSON.
    Odd(Value),
}

fn id_shape() -> impl Strategy<Value = IdShape> {
    prop_oneof![
        3 => Just(IdShape::Full),
        1 => Just(IdShape::Bare),
        3 => prop_oneof![
            Just(json!("sha256:abc")),
            Just(json!("abc")),
            Just(json!("")),
            Just(json!("sha256:")),
            Just(json!(format!("sha256:{}", "AB".repeat(32)))),
            Just(json!(format!("sha512:{}", "ab".repeat(32)))),
            Just(json!(format!("sha256:{}0", "ab".repeat(32)))),
            Just(json!("nginx:latest")),
            Just(json!(null)),
            Just(json!(7)),
            Just(json!(["sha256:abc"])),
            "[ -~]{0,80}".prop_map(Value::from),
        ]
        .prop_map(IdShape::Odd),
    ]
}

/// How an entry's `Labels` is written.
#[derive(Debug, Clone)]
enum LabelShape {
    /// `cascade.managed=true` and these others: well-formed, in scope.
    Ours(Vec<(String, String)>),
    /// Well-formed, not in scope (`null`, `{}`, another value or key).
    NotOurs(Value),
    /// The field left out.
    Missing,
    /// Raw JSON text: a key given twice, a value that is no string.
    Raw(String),
}

fn other_labels() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("[a-z]{1,6}\\.[a-z]{1,6}", "[ -~]{0,8}"), 0..3).prop_map(|v| {
        v.into_iter()
            .filter(|(k, _)| k != "cascade.managed")
            .collect::<HashMap<_, _>>()
            .into_iter()
            .collect()
    })
}

fn label_shape() -> impl Strategy<Value = LabelShape> {
    prop_oneof![
        4 => other_labels().prop_map(LabelShape::Ours),
        2 => prop_oneof![
            Just(json!(null)),
            Just(json!({})),
            Just(json!({"cascade.managed": "True"})),
            Just(json!({"cascade.managed": "true "})),
            Just(json!({"cascade.managed": ""})),
            Just(json!({"cascade.managed": "false"})),
            Just(json!({"Cascade.Managed": "true"})),
            Just(json!({"cascade.managed ": "true"})),
        ]
        .prop_map(LabelShape::NotOurs),
        1 => Just(LabelShape::Missing),
        2 => prop_oneof![
            Just(r#"{"cascade.managed":"false","cascade.managed":"true"}"#.to_string()),
            Just(r#"{"cascade.managed":"true","cascade.managed":"true"}"#.to_string()),
            Just(r#"{"cascade.managed":"true","cascade.managed":"True"}"#.to_string()),
            Just(r#"{"cascade.managed":true}"#.to_string()),
            Just(r#"{"cascade.managed":null}"#.to_string()),
            Just(r#"["cascade.managed=true"]"#.to_string()),
            Just(r#""cascade.managed=true""#.to_string()),
        ]
        .prop_map(LabelShape::Raw),
    ]
}

/// How an entry's `RepoTags` is written.
#[derive(Debug, Clone)]
enum TagShape {
    /// No tag, in any of the engines' spellings, or only the janitor's own
    /// removal name: well-formed, dangling.
    Untagged(Value),
    /// The entry's own removal name only: dangling to the janitor.
    OwnRemovalName,
    /// A real tag, or a look-alike of the placeholder: well-formed, tagged.
    Tagged(Value),
    Missing,
    /// Not a list of strings.
    Odd(Value),
}

fn tag_shape() -> impl Strategy<Value = TagShape> {
    prop_oneof![
        4 => prop_oneof![Just(json!([])), Just(json!(null)), Just(json!(["<none>:<none>"]))]
            .prop_map(TagShape::Untagged),
        1 => Just(TagShape::OwnRemovalName),
        3 => prop_oneof![
            Just(json!(["snap:1"])),
            Just(json!(["<none>:<none>", "snap:1"])),
            Just(json!(["<none>:<none> "])),
            Just(json!(["<NONE>:<NONE>"])),
            Just(json!(["<none>"])),
            Just(json!(["<none>@<none>"])),
            Just(json!([""])),
            Just(json!(["<none>:<none>\u{0}"])),
            Just(json!([format!("localhost/cascade-janitor-removing:{}", "ef".repeat(32))])),
            "[ -~]{1,20}".prop_map(|t| json!([t])),
        ]
        .prop_map(TagShape::Tagged),
        1 => Just(TagShape::Missing),
        1 => prop_oneof![Just(json!("<none>:<none>")), Just(json!([1])), Just(json!({}))]
            .prop_map(TagShape::Odd),
    ]
}

/// How an entry's `Created` is written.
#[derive(Debug, Clone)]
enum CreatedShape {
    /// An hour ago, the epoch, or an hour ahead: well-formed.
    Fine(i64),
    /// Before 1970 (a zero or garbled time).
    BeforeEpoch(i64),
    Missing,
    /// No i64: a float, a string, out of range, `null`.
    Odd(String),
}

fn created_shape() -> impl Strategy<Value = CreatedShape> {
    let now = cascade_cleanup::fake::now();
    prop_oneof![
        4 => prop_oneof![Just(now - 3600), Just(0), Just(now + 3600), 1..now]
            .prop_map(CreatedShape::Fine),
        1 => prop_oneof![Just(-62_135_596_800i64), Just(i64::MIN), i64::MIN..0]
            .prop_map(CreatedShape::BeforeEpoch),
        1 => Just(CreatedShape::Missing),
        1 => prop_oneof![
            Just("1.7e9".to_string()),
            Just("1700000000.5".to_string()),
            Just("\"1700000000\"".to_string()),
            Just("null".to_string()),
            Just("18446744073709551615".to_string()),
            Just("1e400".to_string()),
            Just("-9223372036854775809".to_string()),
        ]
        .prop_map(CreatedShape::Odd),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    id: IdShape,
    labels: LabelShape,
    tags: TagShape,
    created: CreatedShape,
    /// `Size` as JSON text (not a field the scope rule reads).
    size: String,
    /// A key given a second time at the end, with this JSON text.
    twice: Option<(&'static str, String)>,
}

fn entry() -> impl Strategy<Value = Entry> {
    let size = prop_oneof![
        4 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("1e300".to_string()),
        1 => Just("null".to_string()),
    ];
    let twice = proptest::option::weighted(
        0.15,
        prop_oneof![
            Just(("RepoTags", r#"["snap:1"]"#.to_string())),
            Just(("RepoTags", "[]".to_string())),
            Just(("Labels", r#"{"cascade.managed":"true"}"#.to_string())),
            Just(("Id", format!("\"sha256:{}\"", "ee".repeat(32)))),
            Just(("Created", "1".to_string())),
        ],
    );
    (
        id_shape(),
        label_shape(),
        tag_shape(),
        created_shape(),
        size,
        twice,
    )
        .prop_map(|(id, labels, tags, created, size, twice)| Entry {
            id,
            labels,
            tags,
            created,
            size,
            twice,
        })
}

impl Entry {
    /// The `Id` this entry would be listed with, when well-formed.
    fn listed_id(&self, n: usize) -> Option<String> {
        match &self.id {
            IdShape::Full => Some(full_id(n)),
            IdShape::Bare => Some(full_id(n).trim_start_matches("sha256:").to_string()),
            IdShape::Odd(_) => None,
        }
    }

    /// True when every field the scope rule reads is well-formed and the
    /// rule admits the image: the only entries a sweep may remove.
    fn removable(&self) -> bool {
        matches!(self.id, IdShape::Full | IdShape::Bare)
            && matches!(self.labels, LabelShape::Ours(_))
            && matches!(self.tags, TagShape::Untagged(_) | TagShape::OwnRemovalName)
            && matches!(self.created, CreatedShape::Fine(_))
            && !self.has_a_key_twice()
    }

    /// True when the key given a second time was also given the first time.
    fn has_a_key_twice(&self) -> bool {
        match self.twice {
            None => false,
            Some(("Labels", _)) => !matches!(self.labels, LabelShape::Missing),
            Some(("RepoTags", _)) => !matches!(self.tags, TagShape::Missing),
            Some(("Created", _)) => !matches!(self.created, CreatedShape::Missing),
            Some(_) => true,
        }
    }

    /// True when a decoder must read it (every field of the right type).
    fn well_formed(&self) -> bool {
        matches!(self.id, IdShape::Full | IdShape::Bare)
            && matches!(self.labels, LabelShape::Ours(_) | LabelShape::NotOurs(_))
            && matches!(
                self.tags,
                TagShape::Untagged(_) | TagShape::OwnRemovalName | TagShape::Tagged(_)
            )
            && matches!(
                self.created,
                CreatedShape::Fine(_) | CreatedShape::BeforeEpoch(_)
            )
            && self.size.parse::<i64>().is_ok()
            && !self.has_a_key_twice()
    }

    fn json(&self, n: usize) -> String {
        let mut fields = Vec::new();
        let id = match &self.id {
            IdShape::Odd(v) => v.clone(),
            _ => json!(self.listed_id(n)),
        };
        fields.push(format!("\"Id\":{id}"));
        match &self.labels {
            LabelShape::Ours(others) => {
                let mut map: serde_json::Map<String, Value> =
                    others.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                map.insert("cascade.managed".into(), json!("true"));
                fields.push(format!("\"Labels\":{}", Value::Object(map)));
            }
            LabelShape::NotOurs(v) => fields.push(format!("\"Labels\":{v}")),
            LabelShape::Missing => {}
            LabelShape::Raw(text) => fields.push(format!("\"Labels\":{text}")),
        }
        match &self.tags {
            TagShape::Untagged(v) | TagShape::Tagged(v) | TagShape::Odd(v) => {
                fields.push(format!("\"RepoTags\":{v}"))
            }
            TagShape::OwnRemovalName => {
                let hex = full_id(n).trim_start_matches("sha256:").to_string();
                fields.push(format!(
                    "\"RepoTags\":[\"localhost/cascade-janitor-removing:{hex}\"]"
                ));
            }
            TagShape::Missing => {}
        }
        match &self.created {
            CreatedShape::Fine(t) | CreatedShape::BeforeEpoch(t) => {
                fields.push(format!("\"Created\":{t}"))
            }
            CreatedShape::Missing => {}
            CreatedShape::Odd(text) => fields.push(format!("\"Created\":{text}")),
        }
        fields.push(format!("\"Size\":{}", self.size));
        fields.push("\"ParentId\":\"\",\"Containers\":-1,\"SharedSize\":-1".to_string());
        if let Some((key, value)) = &self.twice
            && self.has_a_key_twice()
        {
            fields.push(format!("\"{key}\":{value}"));
        }
        format!("{{{}}}", fields.join(","))
    }
}

fn list_json(entries: &[Entry]) -> String {
    let items: Vec<String> = entries.iter().enumerate().map(|(n, e)| e.json(n)).collect();
    format!("[{}]", items.join(","))
}

/// Every image ID the sweep named for removal or asked to remove, bare.
fn touched(fake: &FakeDocker) -> HashSet<String> {
    fake.edit(|s| {
        let tagged = s.tag_calls.iter().map(|(id, _)| id.clone());
        let removed = s.removal_names.iter().map(|name| {
            name.rsplit_once(':')
                .map_or(name.as_str(), |(_, hex)| hex)
                .to_string()
        });
        tagged
            .chain(removed)
            .map(|id| id.trim_start_matches("sha256:").to_string())
            .collect()
    })
}

/// One real pass (not a plan) of the janitor's sweep over `images`, on the
/// fake engine, with `used` in use; returns the fake.
fn sweep_over(images: Vec<ListedImage>, used: HashSet<String>) -> Arc<FakeDocker> {
    let fake = Arc::new(FakeDocker::with_images(images));
    fake.edit(|s| s.used = used);
    let sweep = DanglingImageSweep::new(
        Arc::clone(&fake) as Arc<dyn DockerImages>,
        SweepConfig {
            min_age: Duration::ZERO,
            measure_reclaimed: false,
            ..SweepConfig::default()
        },
    );
    block_on(sweep.run(&tokio_util::sync::CancellationToken::new()));
    fake
}

fn chunks(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let mut out = Vec::new();
    for cut in cuts {
        let end = (at + cut).min(body.len());
        out.push(body[at..end].to_vec());
        at = end;
    }
    out.push(body[at..].to_vec());
    out
}

/// Decodes `entries` as one body (whole and in the chunks `cuts` make),
/// sweeps what it reads, and checks that only entries the scope rule
/// admits, well-formed in every field it reads, were named or removed.
fn only_the_admitted_are_touched(
    entries: &[Entry],
    cuts: &[usize],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let body = list_json(entries);
    let whole = ListDecoder::decode(body.as_bytes());
    let mut decoder = ListDecoder::default();
    let fed = chunks(body.as_bytes(), cuts)
        .iter()
        .try_for_each(|chunk| decoder.feed(chunk));
    let split = fed.and_then(|()| decoder.finish());
    prop_assert_eq!(&whole, &split);
    if entries.iter().all(Entry::well_formed) {
        prop_assert!(whole.is_ok(), "{body}: {whole:?}");
    }
    let Ok(images) = whole else { return Ok(()) };
    let fake = sweep_over(images, HashSet::new());
    let allowed: HashSet<String> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.removable())
        .filter_map(|(n, e)| e.listed_id(n))
        .map(|id| id.trim_start_matches("sha256:").to_string())
        .collect();
    for id in touched(&fake) {
        prop_assert!(allowed.contains(&id), "{id} touched; body {body}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The image list: whatever the entries, only the well-formed entries
    /// in scope are ever named or removed, a list of well-formed entries is
    /// read, and the split of the body into chunks changes nothing.
    #[test]
    fn only_well_formed_images_in_scope_are_ever_removed(
        entries in proptest::collection::vec(entry(), 1..6),
        cuts in proptest::collection::vec(1usize..200, 0..8),
    ) {
        only_the_admitted_are_touched(&entries, &cuts)?;
    }

    /// The same over lists every decoder must read, so that each case
    /// reaches the sweep: entries out of scope, tagged by a look-alike,
    /// dated before 1970.
    #[test]
    fn of_readable_lists_only_images_in_scope_are_ever_removed(
        entries in proptest::collection::vec(
            entry().prop_filter("readable", Entry::well_formed),
            1..6,
        ),
    ) {
        only_the_admitted_are_touched(&entries, &[])?;
    }

    /// Any bytes, in any split: an error or images, never a panic.
    #[test]
    fn any_bytes_decode_or_fail_without_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(1usize..50, 0..6),
    ) {
        let mut decoder = ListDecoder::default();
        for chunk in chunks(&body, &cuts) {
            if decoder.feed(&chunk).is_err() {
                return Ok(());
            }
        }
        let _ = decoder.finish();
    }
}

/// An arbitrary JSON value whose object keys are drawn from the fields the
/// engine's answers carry, so the models' fields are hit.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("Id"),
        Just("ID"),
        Just("Labels"),
        Just("RepoTags"),
        Just("Created"),
        Just("Size"),
        Just("ParentId"),
        Just("ImageID"),
        Just("Image"),
        Just("Mounts"),
        Just("Type"),
        Just("Name"),
        Just("Source"),
        Just("Components"),
        Just("Version"),
        Just("ApiVersion"),
        Just("Driver"),
        Just("DriverStatus"),
        Just("SystemTime"),
        Just("DockerRootDir"),
        Just("ServerVersion"),
        Just("Config"),
        Just("Action"),
        Just("Actor"),
        Just("Attributes"),
        Just("name"),
        Just("status"),
        Just("id"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just("image".to_string()),
            Just("Engine".to_string()),
            Just("Podman Engine".to_string()),
            Just("1.41".to_string()),
            Just("2026-11-29T08:00:00.5+02:00".to_string()),
            Just("éaaaaa".to_string()),
            Just("+é:00".to_string()),
            Just("<none>:<none>".to_string()),
            Just(full_id(1)),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// How a container lists its image.
#[derive(Debug, Clone)]
enum ContainerShape {
    /// `ImageID` the full ID of image `n` (with or without `sha256:`).
    Uses(usize, bool),
    /// An image mount of image `n` by ID, in `Name` (Docker) or `Source`
    /// (Podman), beside `ImageID` of image `m`.
    Mounts(usize, bool, usize),
    /// `ImageID` missing, `null`, empty, short or not a string.
    Odd(Value),
    /// An image mount that names nothing.
    NamelessMount(usize),
}

fn container_shape() -> impl Strategy<Value = ContainerShape> {
    prop_oneof![
        3 => (0usize..4, any::<bool>()).prop_map(|(n, bare)| ContainerShape::Uses(n, bare)),
        2 => (0usize..4, any::<bool>(), 0usize..4)
            .prop_map(|(n, docker, m)| ContainerShape::Mounts(n, docker, m)),
        1 => prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            Just(json!("abc")),
            Just(json!(7)),
            Just(json!("missing")),
        ]
        .prop_map(ContainerShape::Odd),
        1 => (0usize..4).prop_map(ContainerShape::NamelessMount),
    ]
}

fn container_json(n: usize, shape: &ContainerShape) -> Value {
    let id_of = |i: usize, bare: bool| {
        let id = full_id(i);
        if bare {
            id.trim_start_matches("sha256:").to_string()
        } else {
            id
        }
    };
    match shape {
        ContainerShape::Uses(i, bare) => {
            json!({"Id": format!("c{n}"), "ImageID": id_of(*i, *bare)})
        }
        ContainerShape::Mounts(i, docker, m) => {
            let mount = if *docker {
                json!({"Type": "image", "Name": full_id(*i), "Source": "/var/lib/x", "Destination": "/m"})
            } else {
                json!({"Type": "image", "Source": full_id(*i), "Destination": "/m"})
            };
            json!({"Id": format!("c{n}"), "ImageID": full_id(*m), "Mounts": [mount]})
        }
        ContainerShape::Odd(v) if v == &json!("missing") => json!({"Id": format!("c{n}")}),
        ContainerShape::Odd(v) => json!({"Id": format!("c{n}"), "ImageID": v}),
        ContainerShape::NamelessMount(m) => json!({
            "Id": format!("c{n}"), "ImageID": full_id(*m),
            "Mounts": [{"Type": "image", "Source": "/var/lib/x", "Destination": "/m"}]
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The container list: every image a container uses or mounts is in
    /// use, or the listing is refused (a container whose image is not
    /// clear); images in use are never named or removed.
    #[test]
    fn images_containers_use_are_never_removed(
        shapes in proptest::collection::vec(container_shape(), 0..5),
    ) {
        let listing = Value::Array(
            shapes.iter().enumerate().map(|(n, s)| container_json(n, s)).collect(),
        );
        let decoded: Result<Vec<bollard::models::ContainerSummary>, _> =
            serde_json::from_value(listing.clone());
        let clear = shapes
            .iter()
            .all(|s| matches!(s, ContainerShape::Uses(..) | ContainerShape::Mounts(..)));
        let used = match decoded.map_err(|e| e.to_string()).and_then(|c| {
            crate::images::container_images(&c).map_err(|e| e.message)
        }) {
            Ok((mut used, mounted)) => {
                prop_assert!(clear, "{listing} read though a container is not clear");
                // The janitor resolves each mount by inspecting it; here
                // every mount names an image by its full ID.
                used.extend(mounted);
                used
            }
            Err(error) => {
                prop_assert!(!clear, "{listing} refused: {error}");
                return Ok(());
            }
        };
        let images: Vec<ListedImage> = (0..4)
            .map(|n| cascade_cleanup::fake::ours(&full_id(n)))
            .collect();
        let fake = sweep_over(images, used);
        let mut in_use = HashSet::new();
        for shape in &shapes {
            match shape {
                ContainerShape::Uses(i, _) => {
                    in_use.insert(*i);
                }
                ContainerShape::Mounts(i, _, m) => {
                    in_use.insert(*i);
                    in_use.insert(*m);
                }
                _ => {}
            }
        }
        let touched = touched(&fake);
        for i in in_use {
            let hex = full_id(i).trim_start_matches("sha256:").to_string();
            prop_assert!(!touched.contains(&hex), "image {i} in use was touched: {listing}");
        }
    }

    /// `/version`, `/info`, an inspect and an event: any JSON either fails
    /// to decode or is read without a panic, and an engine that cannot be
    /// identified as a proven one is refused for removal.
    #[test]
    fn every_other_answer_reads_without_panic(
        version in json_value(),
        info in json_value(),
        inspect in json_value(),
        event in json_value(),
    ) {
        let version: Result<bollard::models::SystemVersion, _> = serde_json::from_value(version);
        let info: Result<bollard::models::SystemInfo, _> = serde_json::from_value(info);
        if let (Ok(version), Ok(info)) = (&version, &info) {
            let facts = crate::images::engine_facts(version, info);
            let admission = cascade_cleanup::Admission::of(&facts.identity, false);
            let _ = admission.strategy();
        }
        if let Ok(info) = &info
            && let Some(time) = info.system_time.as_deref()
        {
            let _ = crate::images::engine_time(time);
        }
        if let Ok(inspect) = serde_json::from_value::<bollard::models::ImageInspect>(inspect) {
            let _ = crate::images::inspected_image(inspect, &full_id(0));
        }
        if let Ok(event) = serde_json::from_value::<bollard::models::EventMessage>(event) {
            let event = crate::images::engine_event(event);
            let sweep = DanglingImageSweep::new(
                Arc::new(FakeDocker::default()) as Arc<dyn DockerImages>,
                SweepConfig::default(),
            );
            let _ = sweep.caused(&event);
        }
    }

    /// `/info`'s `SystemTime`, any string: a time or none, never a panic.
    #[test]
    fn any_engine_time_reads_without_panic(time in "\\PC{0,40}") {
        let _ = crate::images::engine_time(&time);
    }
}
