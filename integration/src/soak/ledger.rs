//! The ledger: every image the churn made, and every reason it must
//! survive, each as an interval of wall-clock time.
//!
//! A protection starts when the call that made it was *sent* (a tag, a
//! commit, a container create) and ends when the call that ends it was sent
//! (the churn moving a tag away, removing a container, deleting its own
//! bystander). The janitor's reported removal at `t` violates a protection
//! that started before `t` and had not ended by `t`. Whether it is a loss or
//! one of the two windows the README admits depends on when the protection
//! started against the start of the pass that removed the image (see
//! [`Verdict`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// Why an image must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// It carries a tag the churn put there and has not moved.
    Tagged,
    /// It carries no `cascade.managed` label at all.
    Unlabelled,
    /// It carries a label that looks like ours but is not
    /// (`cascade.managed=True`, `Cascade.Managed=true`,
    /// `cascade.managed=false`).
    LookAlike,
    /// A labelled dangling image the churn tagged again.
    TaggedAgain,
    /// A container was created from it.
    InUse,
    /// A container mounts it (`--mount type=image`).
    Mounted,
    /// A labelled image younger than `--min-age`.
    TooYoung,
    /// It has a child image (built `FROM` it) that still exists: not
    /// dangling to the engine (classic store, Podman).
    Parent,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Tagged => "tagged",
            Reason::Unlabelled => "unlabelled",
            Reason::LookAlike => "look-alike",
            Reason::TaggedAgain => "tagged-again",
            Reason::InUse => "in-use",
            Reason::Mounted => "mounted",
            Reason::TooYoung => "too-young",
            Reason::Parent => "parent",
        }
    }
}

/// One protection of one image.
#[derive(Debug, Clone)]
pub struct Protection {
    pub reason: Reason,
    /// When the call that made it was sent.
    pub from: SystemTime,
    /// When the call that made it answered (the image has it for sure).
    pub held: SystemTime,
    /// When the call that ended it was sent.
    pub until: Option<SystemTime>,
}

impl Protection {
    /// It covers `t`: started before, not ended by then.
    pub fn covers(&self, t: SystemTime) -> bool {
        self.from <= t && self.until.is_none_or(|u| u > t)
    }
}

/// What the churn knows about one image it made.
#[derive(Debug, Clone)]
pub struct Entry {
    pub labelled: bool,
    /// When the call that made it was sent: its `Created` is not earlier.
    pub made: SystemTime,
    pub protections: Vec<Protection>,
    /// A tag of ours moved away from it while it carried the label: the
    /// engine calls it dangling (unless it has children).
    pub dangling: bool,
    /// The janitor reported its removal at this time.
    pub removed: Option<SystemTime>,
    /// The churn deleted it itself, or found it gone.
    pub dropped: bool,
    /// The image it was built `FROM`, where the engine keeps that link.
    pub parent: Option<String>,
}

impl Entry {
    pub fn alive(&self) -> bool {
        self.removed.is_none() && !self.dropped
    }

    /// A protection that covers `t`, preferring the most specific reason.
    pub fn protection_at(&self, t: SystemTime) -> Option<&Protection> {
        self.protections
            .iter()
            .filter(|p| p.covers(t))
            .min_by_key(|p| p.reason)
    }

    /// A protection that holds for sure at `t` (its call answered before
    /// `t` and it had not ended), other than [`Reason::TooYoung`], which
    /// expires by itself.
    pub fn held_at(&self, t: SystemTime) -> Option<&Protection> {
        self.protections
            .iter()
            .filter(|p| {
                p.reason != Reason::TooYoung && p.held <= t && p.until.is_none_or(|u| u > t)
            })
            .min_by_key(|p| p.reason)
    }
}

/// How a reported or observed removal of an image is judged. A window is
/// a protection whose call answered after the pass began (so the pass's
/// listings may predate it); `ms` runs from that call's start to the
/// reported removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing protected it: the janitor's job.
    Fine,
    /// Tagged again after the pass that removed it had listed it (the
    /// one-round-trip window inside the engine); `ms` from the tag call's
    /// start to the reported removal.
    WindowLoss { ms: i64 },
    /// A container was created from it after that pass began, and the
    /// engine let the removal through (it does not serialise container
    /// creation against image deletion).
    EngineWindow { ms: i64 },
    /// A container mounting it was created after that pass listed the
    /// containers: the janitor could not have seen the mount.
    MountWindow { ms: i64 },
    /// Anything else: a protected image lost.
    Loss { reason: Reason, detail: String },
}

/// Every image the churn made, by ID.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
    /// Removals reported before the churn recorded the image (its call
    /// answered after the janitor had removed it).
    early: HashMap<String, SystemTime>,
    /// `--min-age`, for [`Reason::TooYoung`].
    pub min_age: Duration,
    /// Tags the churn moved with a call the engine died under, not yet
    /// resolved: until they are, what they name is not known, so removals
    /// wait to be judged.
    pub unsettled: usize,
}

/// The janitor reads `Created` in whole seconds against the engine's clock
/// in whole seconds: an image may look up to this much older to it.
const AGE_ROUNDING: Duration = Duration::from_secs(1);

impl Ledger {
    pub fn new(min_age: Duration) -> Ledger {
        Ledger {
            entries: HashMap::new(),
            early: HashMap::new(),
            min_age,
            unsettled: 0,
        }
    }

    /// A new image, made by a call sent at `made`; labelled images are too
    /// young until `made + min_age` (less the janitor's rounding).
    pub fn add(&mut self, id: &str, labelled: bool, made: SystemTime) {
        if self.entries.contains_key(id) {
            // The same image reached again (an identical commit): one
            // entry, whose protections add up.
            return;
        }
        let mut entry = Entry {
            labelled,
            made,
            protections: Vec::new(),
            dangling: false,
            removed: None,
            dropped: false,
            parent: None,
        };
        if labelled {
            let until = made + self.min_age.saturating_sub(AGE_ROUNDING);
            entry.protections.push(Protection {
                reason: Reason::TooYoung,
                from: made,
                held: made,
                until: Some(until),
            });
        }
        entry.removed = self.early.remove(id);
        self.entries.insert(id.to_string(), entry);
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Adds a protection made by a call sent at `from` that answered at
    /// `held`.
    pub fn protect(&mut self, id: &str, reason: Reason, from: SystemTime, held: SystemTime) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.protections.push(Protection {
                reason,
                from,
                held,
                until: None,
            });
        }
    }

    /// Ends the open protections of `reason` on `id` at `until` (when the
    /// call that ends them was sent).
    pub fn release(&mut self, id: &str, reason: Reason, until: SystemTime) {
        if let Some(entry) = self.entries.get_mut(id) {
            for p in &mut entry.protections {
                if p.reason == reason && p.until.is_none() {
                    p.until = Some(until);
                }
            }
        }
    }

    /// Ends one open protection of `reason` (one container of several).
    pub fn release_one(&mut self, id: &str, reason: Reason, until: SystemTime) {
        if let Some(entry) = self.entries.get_mut(id)
            && let Some(p) = entry
                .protections
                .iter_mut()
                .find(|p| p.reason == reason && p.until.is_none())
        {
            p.until = Some(until);
        }
    }

    pub fn set_dangling(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.dangling = true;
        }
    }

    /// Tagged again: not dangling any more.
    pub fn clear_dangling(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.dangling = false;
        }
    }

    /// `child` was built `FROM` `parent`; the parent's [`Reason::Parent`]
    /// ends when the child goes.
    pub fn set_parent(&mut self, child: &str, parent: &str) {
        if let Some(entry) = self.entries.get_mut(child) {
            entry.parent = Some(parent.to_string());
        }
    }

    /// The churn deleted the image itself (or found it gone): nothing of it
    /// is checked any more.
    pub fn drop_image(&mut self, id: &str, at: SystemTime) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        entry.dropped = true;
        for p in &mut entry.protections {
            if p.until.is_none_or(|u| u > at) {
                p.until = Some(at);
            }
        }
        if let Some(parent) = entry.parent.take() {
            self.release_one(&parent, Reason::Parent, at);
        }
    }

    /// Records the janitor's removal of `id` at `at`.
    pub fn mark_removed(&mut self, id: &str, at: SystemTime) {
        let Some(entry) = self.entries.get_mut(id) else {
            self.early.insert(id.to_string(), at);
            return;
        };
        entry.removed.get_or_insert(at);
        let parent = entry.parent.take();
        if let Some(parent) = parent {
            self.release_one(&parent, Reason::Parent, at);
        }
    }

    /// Labelled images a tag of ours moved away from, still there as far as
    /// the churn knows: what it tags again and creates containers on.
    pub fn dangling_labelled(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.labelled && e.dangling && e.alive())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Judges a removal of `id` reported at `at` by the pass that began at
    /// `pass_start`.
    pub fn judge(&self, id: &str, at: SystemTime, pass_start: SystemTime) -> Verdict {
        let Some(entry) = self.entries.get(id) else {
            // The workbench is recorded before the daemon starts, so this
            // is an image whose making call never answered the churn: it
            // was seconds old at most.
            return Verdict::Loss {
                reason: Reason::TooYoung,
                detail: "no call of the churn answered for it (made by a call still in flight, or one that failed after making it)".into(),
            };
        };
        let Some(p) = entry.protection_at(at) else {
            return Verdict::Fine;
        };
        let ms = millis_between(p.from, at);
        // The pass cannot have seen a protection whose call answered after
        // it began: the tag or container may postdate its listings.
        let after_listing = p.held >= pass_start;
        match p.reason {
            Reason::TaggedAgain if after_listing => Verdict::WindowLoss { ms },
            Reason::InUse if after_listing => Verdict::EngineWindow { ms },
            Reason::Mounted if after_listing => Verdict::MountWindow { ms },
            reason => Verdict::Loss {
                reason,
                detail: format!(
                    "protected (call sent {} ms before the removal, answered {} ms before its pass began)",
                    ms,
                    millis_between(p.held, pass_start)
                ),
            },
        }
    }

    /// Every image that must be on the engine at `t`: alive, with a
    /// protection other than age held at `t`.
    pub fn must_exist_at(&self, t: SystemTime) -> BTreeMap<String, Reason> {
        self.entries
            .iter()
            .filter(|(_, e)| e.alive())
            .filter_map(|(id, e)| e.held_at(t).map(|p| (id.clone(), p.reason)))
            .collect()
    }

    /// Alive images in use by a container of the churn.
    pub fn in_use(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.alive())
            .filter(|(_, e)| {
                e.protections.iter().any(|p| {
                    matches!(p.reason, Reason::InUse | Reason::Mounted) && p.until.is_none()
                })
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn millis_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn an_unprotected_removal_is_fine_and_a_protected_one_is_judged_by_its_pass() {
        let mut ledger = Ledger::new(Duration::from_secs(10));
        ledger.add("old", true, at(0));
        ledger.protect("old", Reason::Tagged, at(0), at(1));
        ledger.release("old", Reason::Tagged, at(5));
        ledger.set_dangling("old");
        assert_eq!(ledger.judge("old", at(20), at(19)), Verdict::Fine);
        // Too young: made at 0, min-age 10 s less 1 s of rounding.
        assert!(matches!(
            ledger.judge("old", at(8), at(7)),
            Verdict::Loss {
                reason: Reason::TooYoung,
                ..
            }
        ));
        ledger.protect("old", Reason::TaggedAgain, at(30), at(30));
        // Tagged again before the pass began: the pass saw the tag.
        assert!(matches!(
            ledger.judge("old", at(32), at(31)),
            Verdict::Loss {
                reason: Reason::TaggedAgain,
                ..
            }
        ));
        // Tagged again after the pass listed it: the window.
        assert_eq!(
            ledger.judge("old", at(32), at(29)),
            Verdict::WindowLoss { ms: 2000 }
        );
    }

    #[test]
    fn containers_and_mounts_made_after_the_pass_began_are_the_engine_and_mount_windows() {
        let mut ledger = Ledger::new(Duration::ZERO);
        ledger.add("a", true, at(0));
        ledger.protect("a", Reason::InUse, at(10), at(10));
        assert_eq!(
            ledger.judge("a", at(11), at(9)),
            Verdict::EngineWindow { ms: 1000 }
        );
        assert!(matches!(
            ledger.judge("a", at(11), at(10) + Duration::from_millis(1)),
            Verdict::Loss {
                reason: Reason::InUse,
                ..
            }
        ));
        ledger.release_one("a", Reason::InUse, at(12));
        assert_eq!(ledger.judge("a", at(13), at(12)), Verdict::Fine);
        ledger.add("m", true, at(0));
        ledger.protect("m", Reason::Mounted, at(10), at(10));
        assert_eq!(
            ledger.judge("m", at(11), at(9)),
            Verdict::MountWindow { ms: 1000 }
        );
    }

    #[test]
    fn bystanders_must_exist_until_the_churn_drops_them() {
        let mut ledger = Ledger::new(Duration::from_secs(10));
        ledger.add("b", false, at(0));
        ledger.protect("b", Reason::Unlabelled, at(0), at(1));
        assert!(ledger.must_exist_at(at(0)).is_empty(), "not held yet");
        assert_eq!(
            ledger.must_exist_at(at(2)).get("b"),
            Some(&Reason::Unlabelled)
        );
        ledger.drop_image("b", at(3));
        assert!(ledger.must_exist_at(at(4)).is_empty());
        assert_eq!(ledger.judge("b", at(4), at(4)), Verdict::Fine);
        assert!(matches!(
            ledger.judge("unknown", at(4), at(4)),
            Verdict::Loss { .. }
        ));
    }
}
