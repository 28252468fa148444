//! `panics_total{engine, where}`: every panic a loop caught and survived.

use cascade_cleanup::PanicSite;

use super::*;

#[test]
fn caught_panics_are_counted_per_engine_and_site_from_zero() {
    let (t, _) = telemetry(HOUR);
    let _e1 = t.engine(E1, always_alive());
    let _e2 = t.engine(E2, always_alive());
    let on_panic = t.panics(E1);
    let count = |engine, site| {
        v(
            &t.render(),
            "cascade_janitor_panics_total",
            &[("engine", engine), ("where", site)],
        )
    };
    for site in ["sweep", "observer", "events"] {
        assert_eq!(count(E1, site), 0.0, "{site} exists at 0");
    }
    on_panic(PanicSite::Sweep);
    on_panic(PanicSite::Sweep);
    on_panic(PanicSite::Observer);
    assert_eq!(count(E1, "sweep"), 2.0);
    assert_eq!(count(E1, "observer"), 1.0);
    assert_eq!(count(E1, "events"), 0.0);
    assert_eq!(count(E2, "sweep"), 0.0, "another engine's series stay put");
}
