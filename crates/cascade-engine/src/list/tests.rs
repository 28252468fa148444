use super::*;

/// A dangling labelled image as Docker 20.10 (API 1.41, classic store)
/// lists it: `<none>` placeholders, `Containers` and `SharedSize` -1,
/// `VirtualSize` still present.
const DOCKER_20_10: &str = r#"[{"Containers":-1,"Created":1700000000,"Id":"sha256:5c8c7d2a61e9b0f0e2e2d2b5b5b1d1a9b57a3d4b0a58d4b2c4f9a5a7c3b2e1f0","Labels":{"cascade.managed":"true","cascade.run":"7"},"ParentId":"","RepoDigests":["<none>@<none>"],"RepoTags":["<none>:<none>"],"SharedSize":-1,"Size":1048,"VirtualSize":1048}]"#;

/// Docker 26.1 (API 1.45), classic store: no `VirtualSize`, the placeholders
/// gone, `Containers` still -1.
const DOCKER_26_1_CLASSIC: &str = r#"[{"Containers":-1,"Created":1700000000,"Id":"sha256:5c8c7d2a61e9b0f0e2e2d2b5b5b1d1a9b57a3d4b0a58d4b2c4f9a5a7c3b2e1f0","Labels":{"cascade.managed":"true","cascade.run":"7"},"ParentId":"","RepoDigests":[],"RepoTags":[],"SharedSize":-1,"Size":1048}]"#;

/// Docker 28.5 (API 1.51), containerd store: `Id` is the manifest digest,
/// with a `Descriptor` and `Manifests` whose nested objects and arrays the
/// split must walk through.
pub(crate) const DOCKER_28_5_CONTAINERD: &str = r#"[
  {
    "Containers": 0,
    "Created": 1700000000,
    "Descriptor": {
      "annotations": {"io.containerd.image.name": "moby-dangling@sha256:5c8c", "note": "a } and a ] and a \" in a string"},
      "digest": "sha256:5c8c7d2a61e9b0f0e2e2d2b5b5b1d1a9b57a3d4b0a58d4b2c4f9a5a7c3b2e1f0",
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "size": 402
    },
    "Id": "sha256:5c8c7d2a61e9b0f0e2e2d2b5b5b1d1a9b57a3d4b0a58d4b2c4f9a5a7c3b2e1f0",
    "Labels": {"cascade.managed": "true", "cascade.run": "7"},
    "Manifests": [{"ID": "sha256:5c8c", "Available": true, "Kind": "image",
      "Descriptor": {"digest": "sha256:5c8c", "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 402},
      "ImageData": {"Platform": {"architecture": "amd64", "os": "linux"}, "Containers": [], "Size": {"Unpacked": 0}},
      "Size": {"Content": 1048, "Total": 1048}}],
    "ParentId": "",
    "RepoDigests": [],
    "RepoTags": [],
    "SharedSize": -1,
    "Size": 1048
  }
]"#;

fn expected(tags: &[&str]) -> Vec<ListedImage> {
    vec![ListedImage {
        id: "sha256:5c8c7d2a61e9b0f0e2e2d2b5b5b1d1a9b57a3d4b0a58d4b2c4f9a5a7c3b2e1f0".into(),
        created: 1_700_000_000,
        size: 1048,
        labels: HashMap::from([
            ("cascade.managed".into(), "true".into()),
            ("cascade.run".into(), "7".into()),
        ]),
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
        parent_id: String::new(),
    }]
}

#[test]
fn every_engines_shape_decodes_to_what_the_sweep_checks() {
    assert_eq!(
        ListDecoder::decode(DOCKER_20_10.as_bytes()),
        Ok(expected(&["<none>:<none>"]))
    );
    assert_eq!(
        ListDecoder::decode(DOCKER_26_1_CLASSIC.as_bytes()),
        Ok(expected(&[]))
    );
    assert_eq!(
        ListDecoder::decode(DOCKER_28_5_CONTAINERD.as_bytes()),
        Ok(expected(&[]))
    );
}

#[test]
fn the_decoder_agrees_with_bollards_model() {
    for body in [DOCKER_20_10, DOCKER_26_1_CLASSIC, DOCKER_28_5_CONTAINERD] {
        let bollard: Vec<bollard::models::ImageSummary> =
            serde_json::from_str(body).expect("bollard reads it");
        let via_bollard: Vec<ListedImage> = bollard.into_iter().map(crate::listed_image).collect();
        assert_eq!(ListDecoder::decode(body.as_bytes()), Ok(via_bollard));
    }
}

#[test]
fn any_split_of_the_body_decodes_the_same() {
    let two = format!(
        "{},{}",
        DOCKER_28_5_CONTAINERD.trim_end().trim_end_matches(']'),
        DOCKER_26_1_CLASSIC.trim_start_matches('[')
    );
    let whole = ListDecoder::decode(two.as_bytes()).expect("two images");
    assert_eq!(whole.len(), 2);
    let bytes = two.as_bytes();
    for at in 0..=bytes.len() {
        let mut decoder = ListDecoder::default();
        decoder.feed(&bytes[..at]).expect("first part");
        decoder.feed(&bytes[at..]).expect("second part");
        assert_eq!(decoder.finish().as_ref(), Ok(&whole), "split at {at}");
    }
    let mut one_by_one = ListDecoder::default();
    for b in bytes {
        one_by_one.feed(std::slice::from_ref(b)).expect("a byte");
    }
    assert_eq!(one_by_one.finish(), Ok(whole));
}

#[test]
fn null_lists_read_as_empty_and_an_empty_list_is_no_images() {
    let body = format!(
        r#"[{{"Id":"sha256:{}","ParentId":"","RepoTags":null,"Created":1,"Size":2,"Labels":null}}]"#,
        "a".repeat(64)
    );
    let images = ListDecoder::decode(body.as_bytes()).expect("decodes");
    assert_eq!(images[0].repo_tags, Vec::<String>::new());
    assert!(images[0].labels.is_empty());
    assert_eq!(ListDecoder::decode(b" [ ] \n"), Ok(Vec::new()));
}

#[test]
fn malformed_input_is_refused_with_where_and_why() {
    let refused = |body: &str| {
        ListDecoder::decode(body.as_bytes())
            .expect_err(body)
            .to_string()
    };
    let prefix = "the engine's image list (GET /images/json) is not valid JSON of images: ";
    assert_eq!(
        refused(r#"{"message":"page not found"}"#),
        format!("{prefix}expected `[`, found `{{` at byte 0")
    );
    assert_eq!(
        refused(&DOCKER_20_10[..100]),
        format!("{prefix}the body ends before the list's closing `]` at byte 100")
    );
    assert_eq!(
        refused("[1]"),
        format!("{prefix}expected an image object or `]`, found `1` at byte 1")
    );
    assert_eq!(
        refused(&format!("{DOCKER_20_10} []")),
        format!(
            "{prefix}expected the end of the body, found `[` at byte {}",
            DOCKER_20_10.len() + 1
        )
    );
    // A listing without `RepoTags` must not read as an untagged image.
    assert_eq!(
        refused(r#"[{"Id":"sha256:a","ParentId":"","Created":1,"Size":2,"Labels":{}}]"#),
        format!("{prefix}image 1 starting at byte 1: missing field `RepoTags` at line 1 column 64")
    );
    assert_eq!(
        refused(
            r#"[{"Id":"sha256:a","ParentId":"","RepoTags":[],"Created":"x","Size":2,"Labels":{}}]"#
        ),
        format!(
            "{prefix}image 1 starting at byte 1: invalid type: string \"x\", expected i64 at line 1 column 58"
        )
    );
    assert_eq!(
        refused("[{\"Id\": }]"),
        format!("{prefix}image 1 starting at byte 1: expected value at line 1 column 8")
    );
}

#[test]
fn the_query_carries_the_filters_percent_encoded() {
    let filters = HashMap::from([(
        "label".to_string(),
        vec!["cascade.managed=true".to_string()],
    )]);
    assert_eq!(
        list_query(false, &filters),
        "all=false&filters=%7B%22label%22%3A%5B%22cascade.managed%3Dtrue%22%5D%7D"
    );
    assert_eq!(list_query(true, &HashMap::new()), "all=true&filters=%7B%7D");
}

/// Labels whose key is given twice are unknown: a map would keep the last
/// value, which may be ours while the engine holds another. The whole list
/// is refused, so nothing is removed on it.
#[test]
fn a_label_given_twice_refuses_the_list() {
    let id = "a".repeat(64);
    let body = |labels: &str| {
        format!(
            r#"[{{"Id":"sha256:{id}","ParentId":"","RepoTags":[],"Created":1,"Size":2,"Labels":{labels}}}]"#
        )
    };
    for labels in [
        r#"{"cascade.managed":"false","cascade.managed":"true"}"#,
        r#"{"cascade.managed":"true","x":"1","cascade.managed":"true"}"#,
    ] {
        let error = ListDecoder::decode(body(labels).as_bytes())
            .expect_err(labels)
            .to_string();
        assert!(
            error.contains("label `cascade.managed` is given twice"),
            "{error}"
        );
    }
    let once = ListDecoder::decode(body(r#"{"cascade.managed":"true","x":"1"}"#).as_bytes())
        .expect("each key once");
    assert_eq!(once[0].labels.len(), 2);
}

/// A short or odd ID could name another image when tagged or removed by
/// (engines resolve a short ID by prefix): the list is refused.
#[test]
fn an_image_id_that_is_not_a_full_id_refuses_the_list() {
    let body = |id: &str| {
        format!(
            r#"[{{"Id":"{id}","ParentId":"","RepoTags":[],"Created":1,"Size":2,"Labels":{{"cascade.managed":"true"}}}}]"#
        )
    };
    let full = "ab".repeat(32);
    for id in [
        "sha256:abc".to_string(),
        "abc".to_string(),
        String::new(),
        "sha256:".to_string(),
        format!("sha256:{}", full.to_uppercase()),
        format!("sha512:{full}"),
        format!("sha256:{full}0"),
        "nginx:latest".to_string(),
        format!("sha256:{}/../x", &full[..60]),
    ] {
        let error = ListDecoder::decode(body(&id).as_bytes())
            .expect_err(&id)
            .to_string();
        assert!(error.contains("is not a full image ID"), "{id}: {error}");
    }
    for id in [format!("sha256:{full}"), full.clone()] {
        assert_eq!(
            ListDecoder::decode(body(&id).as_bytes()).expect(&id)[0].id,
            id
        );
    }
}
