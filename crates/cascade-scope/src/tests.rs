use super::*;
use proptest::prelude::*;

fn label(s: &str) -> Label {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const ID: &str = "sha256:00c0ffee";

fn facts<'a>(labels: &'a HashMap<String, String>, tags: &'a [String]) -> ImageFacts<'a> {
    ImageFacts {
        id: ID,
        labels,
        repo_tags: tags,
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn default_scope_renders_exactly_the_original_filters() {
    let filters = Scope::default().docker_filters();
    let expected = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        (
            "label".to_string(),
            vec!["cascade.managed=true".to_string()],
        ),
    ]);
    assert_eq!(filters, expected);
}

#[test]
fn label_parsing_accepts_and_rejects() {
    assert_eq!(label("a=b").key(), "a");
    assert_eq!(label("a=b=c").value(), "b=c", "the value may contain `=`");
    assert_eq!(label("k=two words").value(), "two words");
    type Case = (&'static str, fn(String) -> LabelError);
    let cases: [Case; 6] = [
        ("=x", LabelError::EmptyKey),
        ("k", LabelError::MissingEquals),
        ("a b=c", LabelError::WhitespaceInKey),
        ("\tk=v", LabelError::ControlCharacter),
        ("k=", LabelError::EmptyValue),
        ("", LabelError::MissingEquals),
    ];
    for (input, expected) in cases {
        let err = input.parse::<Label>().expect_err(input);
        let want = expected(input.escape_debug().to_string());
        assert_eq!(err, want, "{input:?}");
        let message = err.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn scope_refuses_empty_and_conflicts_and_folds_duplicates() {
    assert_eq!(Scope::new([]), Err(ScopeError::Empty));
    assert!(matches!(
        Scope::new([label("a=1"), label("a=2")]),
        Err(ScopeError::ConflictingValues { .. })
    ));
    let scope = Scope::new([label("b=1"), label("a=1"), label("b=1")]).unwrap();
    assert_eq!(scope.label_filters(), vec!["a=1", "b=1"]);
}

#[test]
fn check_requires_every_label_exactly_and_no_tag() {
    let scope = Scope::new([label("cascade.managed=true"), label("project=x")]).unwrap();
    let none: Vec<String> = vec![];
    let placeholder = vec!["<none>:<none>".to_string()];
    let tagged = vec!["mysql:8.0".to_string()];
    let both = map(&[("cascade.managed", "true"), ("project", "x")]);
    assert_eq!(scope.check(&facts(&both, &none)), Ok(()));
    assert_eq!(scope.check(&facts(&both, &placeholder)), Ok(()));
    assert_eq!(
        scope.check(&facts(&both, &tagged)),
        Err(OutOfScope::Tagged {
            tag: "mysql:8.0".into()
        })
    );
    let only_one = map(&[("cascade.managed", "true")]);
    assert_eq!(
        scope.check(&facts(&only_one, &none)),
        Err(OutOfScope::LabelMissing {
            key: "project".into()
        })
    );
    for (key, value) in [
        ("cascade.managed", "True"),
        ("cascade.managed", "true "),
        ("cascade.managed", "false"),
    ] {
        let labels = map(&[(key, value), ("project", "x")]);
        assert!(
            matches!(
                scope.check(&facts(&labels, &none)),
                Err(OutOfScope::LabelValueMismatch { .. })
            ),
            "{key}={value:?}"
        );
    }
    let look_alikes = map(&[
        ("Cascade.Managed", "true"),
        ("cascade.managed.x", "true"),
        ("project", "x"),
    ]);
    assert_eq!(
        scope.check(&facts(&look_alikes, &none)),
        Err(OutOfScope::LabelMissing {
            key: "cascade.managed".into()
        })
    );
}

#[test]
fn the_janitors_removal_name_of_the_image_itself_is_not_a_tag() {
    let scope = Scope::default();
    let ours = map(&[("cascade.managed", "true")]);
    let own = vec![removal_name(ID).expect("a sha256 ID")];
    assert_eq!(own[0], "localhost/cascade-janitor-removing:00c0ffee");
    assert_eq!(scope.check(&facts(&ours, &own)), Ok(()));
    assert!(is_untagged(ID, &own));
    // Another image's removal name is a tag like any other.
    let other = vec![removal_name("sha256:00c0ffef").expect("valid")];
    assert_eq!(
        scope.check(&facts(&ours, &other)),
        Err(OutOfScope::Tagged {
            tag: other[0].clone()
        })
    );
    // With a real tag beside it, the image is tagged.
    let both = vec![own[0].clone(), "snap:1".to_string()];
    assert_eq!(
        scope.check(&facts(&ours, &both)),
        Err(OutOfScope::Tagged {
            tag: "snap:1".into()
        })
    );
    // The name never makes an unlabelled image ours.
    let theirs = map(&[("app", "mysql")]);
    assert!(matches!(
        scope.check(&facts(&theirs, &own)),
        Err(OutOfScope::LabelMissing { .. })
    ));
}

#[test]
fn removal_names_are_made_only_of_hex_ids() {
    let hex64 = "a".repeat(64);
    assert_eq!(
        removal_name(&format!("sha256:{hex64}")),
        Some(format!("localhost/cascade-janitor-removing:{hex64}"))
    );
    assert_eq!(
        removal_name(&hex64),
        Some(format!("localhost/cascade-janitor-removing:{hex64}")),
        "Podman's bare hex"
    );
    assert!(removal_name("sha256:plain").is_some(), "any tag word");
    for bad in [
        "",
        "sha256:",
        "sha256:.ab",
        "sha256:-x",
        "sha256:ab/cd",
        "sha256:a b",
        &"a".repeat(129),
    ] {
        assert_eq!(removal_name(bad), None, "{bad:?}");
    }
    assert!(is_any_removal_name(&format!(
        "{REMOVAL_REPOSITORY}:{hex64}"
    )));
    for not_ours in [
        "cascade-janitor-removing:abc".to_string(),
        format!("{REMOVAL_REPOSITORY}:"),
        format!("{REMOVAL_REPOSITORY}x:abc"),
        format!("{REMOVAL_REPOSITORY}:a/b"),
        "snap:1".to_string(),
    ] {
        assert!(!is_any_removal_name(&not_ours), "{not_ours}");
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._/-]{1,12}"
}

fn value_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .=_-]{1,8}"
}

proptest! {
    /// Any string the parser accepts yields a non-empty key without `=` or
    /// whitespace, and renders back to the same string.
    #[test]
    fn parsed_labels_round_trip(s in "\\PC{0,20}") {
        if let Ok(l) = s.parse::<Label>() {
            prop_assert!(!l.key().is_empty());
            prop_assert!(!l.key().contains('=') && !l.key().chars().any(char::is_whitespace));
            prop_assert!(!l.value().is_empty());
            prop_assert_eq!(l.to_string(), s);
        }
    }

    /// Any scope the builder accepts renders `dangling=["true"]` and every
    /// label it was given, never an empty label list.
    #[test]
    fn accepted_scopes_render_dangling_and_every_label(
        pairs in proptest::collection::vec((key_strategy(), value_strategy()), 0..6)
    ) {
        let labels: Vec<Label> = pairs.iter().map(|(k, v)| Label::new(k, v).unwrap()).collect();
        match Scope::new(labels.clone()) {
            Ok(scope) => {
                let filters = scope.docker_filters();
                prop_assert_eq!(filters.len(), 2);
                prop_assert_eq!(&filters["dangling"], &vec!["true".to_string()]);
                let rendered = &filters["label"];
                prop_assert!(!rendered.is_empty());
                for l in &labels {
                    prop_assert!(rendered.contains(&l.to_string()), "{} missing", l);
                }
                prop_assert!(rendered.len() <= labels.len());
            }
            Err(ScopeError::Empty) => prop_assert!(labels.is_empty()),
            Err(ScopeError::ConflictingValues { key, .. }) => {
                let values: std::collections::HashSet<_> =
                    labels.iter().filter(|l| l.key() == key).map(Label::value).collect();
                prop_assert!(values.len() > 1);
            }
        }
    }

    /// The client-side check agrees with a reference predicate written
    /// straight from the invariant's wording.
    #[test]
    fn check_agrees_with_reference_predicate(
        scope_pairs in proptest::collection::btree_map(key_strategy(), value_strategy(), 1..4),
        extra in proptest::collection::vec((key_strategy(), value_strategy()), 0..4),
        keep in proptest::collection::vec(any::<bool>(), 4),
        mutate in proptest::collection::vec(any::<bool>(), 4),
        tags in proptest::collection::vec(prop_oneof![
            Just("<none>:<none>".to_string()),
            "[a-z]{1,5}:[a-z]{1,5}",
            Just(format!("{REMOVAL_REPOSITORY}:00c0ffee")),
            Just(format!("{REMOVAL_REPOSITORY}:00c0ffef")),
        ], 0..3),
    ) {
        let scope = Scope::new(scope_pairs.iter().map(|(k, v)| Label::new(k, v).unwrap())).unwrap();
        let mut image_labels: HashMap<String, String> = extra.into_iter().collect();
        for (i, (k, v)) in scope_pairs.iter().enumerate() {
            if keep[i] {
                let v = if mutate[i] { format!("{v}x") } else { v.clone() };
                image_labels.insert(k.clone(), v);
            } else {
                image_labels.remove(k);
            }
        }
        let own_name = "localhost/cascade-janitor-removing:00c0ffee";
        let reference = tags.iter().all(|t| t == "<none>:<none>" || t == own_name)
            && scope_pairs.iter().all(|(k, v)| image_labels.get(k) == Some(v));
        let verdict = scope.check(&ImageFacts { id: ID, labels: &image_labels, repo_tags: &tags });
        prop_assert_eq!(verdict.is_ok(), reference, "{:?}", verdict);
    }
}
