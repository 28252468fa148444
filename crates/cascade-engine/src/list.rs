//! `GET /images/json`, read as it arrives.
//!
//! bollard reads the whole body (2.9 MB at 10,000 images), then decodes all
//! of it into its full `ImageSummary` (digests, shared size, manifests,
//! descriptor) before the janitor keeps six fields of each. Here every
//! image object is decoded into a [`ListedImage`] as soon as its closing
//! brace arrives, and the body is dropped chunk by chunk, so a pass holds
//! one image's bytes, not the list's (docs/BENCHMARKS.md, "Memory").
//!
//! The split is by brackets only (strings and escapes respected); each
//! object is then parsed by serde_json, which checks it in full. Unknown
//! fields are skipped unread, so every engine's shape decodes (API 1.41:
//! `RepoTags ["<none>:<none>"]`; 1.51: `RepoTags []`, `Descriptor`,
//! `Manifests`). The fields a sweep relies on are required as bollard
//! requires them: a listing without `RepoTags` must not read as untagged.

use std::collections::HashMap;

use cascade_cleanup::ListedImage;
use serde::{Deserialize, Deserializer};

/// One image object, only the fields a sweep reads.
#[derive(Deserialize)]
struct WireImage {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "ParentId")]
    parent_id: String,
    #[serde(rename = "RepoTags", deserialize_with = "null_as_empty")]
    repo_tags: Vec<String>,
    #[serde(rename = "Created")]
    created: i64,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "Labels", deserialize_with = "unique_labels")]
    labels: HashMap<String, String>,
}

/// `Labels` as a map in which each key appears once: `null` reads as
/// empty, as in [`null_as_empty`]; a key given twice is an error, since
/// the image's labels are then unknown (a map would keep the last value
/// given, which may be ours while the engine stores another).
/// `[ref:scope_invariant]`
fn unique_labels<'de, D>(d: D) -> Result<HashMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Labels;
    impl<'de> serde::de::Visitor<'de> for Labels {
        type Value = HashMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of label strings, or null")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(HashMap::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(HashMap::new())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut labels = HashMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if labels.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!(
                        "label `{key}` is given twice"
                    )));
                }
                labels.insert(key, value);
            }
            Ok(labels)
        }
    }
    d.deserialize_option(Labels)
}

/// True for a full image ID as engines list them: `sha256:` and 64
/// lowercase hex digits (Podman's bare 64 hex too). Anything shorter could
/// name another image when the janitor tags or removes by it (engines
/// resolve a short ID by prefix), so a listing with any other ID is not
/// read. `[ref:scope_invariant]`
pub fn is_full_image_id(id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `null` reads as empty, as in bollard's models (older engines send
/// `"Labels": null`); a missing field is still an error.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

impl From<WireImage> for ListedImage {
    fn from(w: WireImage) -> ListedImage {
        ListedImage {
            id: w.id,
            created: w.created,
            size: w.size,
            labels: w.labels,
            repo_tags: w.repo_tags,
            parent_id: w.parent_id,
        }
    }
}

/// Why a body is not an image list. Nothing is removed on it: the pass's
/// scan fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the engine's image list (GET /images/json) is not valid JSON of images: {why}")]
pub struct ListError {
    why: String,
}

impl ListError {
    fn at(offset: u64, why: impl std::fmt::Display) -> ListError {
        ListError {
            why: format!("{why} at byte {offset}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[`: an image or `]`.
    First,
    /// Inside an image object.
    Image,
    /// After an image: `,` or `]`.
    AfterImage,
    /// After `,`: an image.
    Next,
    /// After the closing `]`: whitespace only.
    End,
}

/// Feeds on the body's chunks as they arrive; [`ListDecoder::finish`]
/// returns the images.
#[derive(Debug)]
pub struct ListDecoder {
    state: State,
    /// The current image object's bytes so far (reused: one image's size).
    pending: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Bytes of the body before the current chunk.
    offset: u64,
    /// Where the current image object started.
    image_start: u64,
    images: Vec<ListedImage>,
}

impl Default for ListDecoder {
    fn default() -> ListDecoder {
        ListDecoder {
            state: State::Start,
            pending: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            offset: 0,
            image_start: 0,
            images: Vec::new(),
        }
    }
}

/// JSON's whitespace (RFC 8259), nothing else.
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl ListDecoder {
    /// Decodes a whole body at once (tests, benchmarks).
    pub fn decode(body: &[u8]) -> Result<Vec<ListedImage>, ListError> {
        let mut decoder = ListDecoder::default();
        decoder.feed(body)?;
        decoder.finish()
    }

    /// Takes the next chunk of the body, in any split.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ListError> {
        let mut i = 0;
        while i < chunk.len() {
            if self.state == State::Image {
                let start = i;
                let mut closed = false;
                while i < chunk.len() {
                    let b = chunk[i];
                    i += 1;
                    if self.in_string {
                        if self.escaped {
                            self.escaped = false;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        b'}' | b']' => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                closed = true;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                self.pending.extend_from_slice(&chunk[start..i]);
                if closed {
                    self.decode_pending()?;
                    self.state = State::AfterImage;
                }
                continue;
            }
            let b = chunk[i];
            if is_json_space(b) {
                i += 1;
                continue;
            }
            self.state = match (self.state, b) {
                (State::Start, b'[') => State::First,
                (State::First | State::AfterImage, b']') => State::End,
                (State::AfterImage, b',') => State::Next,
                (State::First | State::Next, b'{') => {
                    // Not consumed: the scan above counts its depth.
                    self.image_start = self.offset + i as u64;
                    self.pending.clear();
                    self.depth = 0;
                    State::Image
                }
                (state, _) => {
                    let expected = match state {
                        State::Start => "`[`",
                        State::First => "an image object or `]`",
                        State::AfterImage => "`,` or `]`",
                        State::Next => "an image object",
                        _ => "the end of the body",
                    };
                    return Err(ListError::at(
                        self.offset + i as u64,
                        format_args!("expected {expected}, found {}", shown(b)),
                    ));
                }
            };
            if self.state != State::Image {
                i += 1;
            }
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    fn decode_pending(&mut self) -> Result<(), ListError> {
        let image: WireImage = serde_json::from_slice(&self.pending).map_err(|e| {
            ListError::at(
                self.image_start,
                format_args!("image {} starting", self.images.len() + 1),
            )
            .with_cause(e)
        })?;
        if !is_full_image_id(&image.id) {
            return Err(ListError::at(
                self.image_start,
                format_args!(
                    "image {} starting: its ID `{}` is not a full image ID (sha256: and 64 hex digits)",
                    self.images.len() + 1,
                    image.id.escape_debug()
                ),
            ));
        }
        self.images.push(image.into());
        Ok(())
    }

    /// The images, once the body ended after its closing `]`.
    pub fn finish(self) -> Result<Vec<ListedImage>, ListError> {
        if self.state != State::End {
            return Err(ListError::at(
                self.offset,
                "the body ends before the list's closing `]`",
            ));
        }
        let mut images = self.images;
        // The doubling left up to half of it unused, for the whole pass.
        images.shrink_to_fit();
        Ok(images)
    }
}

impl ListError {
    fn with_cause(self, cause: serde_json::Error) -> ListError {
        ListError {
            why: format!("{}: {cause}", self.why),
        }
    }
}

fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// `all` and `filters` as the query string of `GET /images/json` (the
/// filters as JSON, percent-encoded).
pub fn list_query(all: bool, filters: &HashMap<String, Vec<String>>) -> String {
    format!("all={all}&filters={}", encoded_filters(filters))
}

/// `filters` as the JSON engines read, percent-encoded for a query string
/// (`GET /images/json`, `GET /events`).
pub(crate) fn encoded_filters<K: serde::Serialize + std::hash::Hash + Eq>(
    filters: &HashMap<K, Vec<String>>,
) -> String {
    // A map of strings to string lists always serialises.
    let json = serde_json::to_string(filters).unwrap_or_else(|_| "{}".to_string());
    let mut encoded = String::with_capacity(json.len() * 2);
    for b in json.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
pub(crate) mod tests;
