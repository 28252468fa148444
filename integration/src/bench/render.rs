//! Rendering: the Markdown tables `docs/BENCHMARKS.md` carries (with the
//! [`TARGETS`] the comparison is judged by) and the comparison's SVG chart.
//!
//! Pure functions of the typed results: every row is a contender of the
//! results, found by its [`Contender`] key, never by its name.

use std::fmt::Write;

use super::contender::Contender;
use super::procfs::CLOCK_TICKS_PER_SECOND;
use super::results::{GentleResults, Results, SizeResult};
use super::stats::{Summary, median};
use crate::engine::{Family, MatrixEngine};

/// A target of the comparison: a measure and the bound it must stay within.
#[derive(Debug)]
pub struct Target {
    /// The row's words before the bound ("sweep", "dry run").
    pub what: &'static str,
    pub measure: Measure,
    /// At most this (a ratio), or below it (megabytes).
    pub bound: f64,
}

/// What a [`Target`] measures.
#[derive(Debug)]
pub enum Measure {
    /// `numerator`'s median wall time over `denominator`'s, at the
    /// measured size, at most the bound. `against` names the denominator
    /// in the row; `decimals` is the precision of the seconds shown.
    Ratio {
        numerator: Contender,
        denominator: Contender,
        against: Option<&'static str>,
        decimals: usize,
    },
    /// The contender's median per labelled image at the largest size over
    /// that at the smallest, at most the bound (when two sizes ran).
    PerImageGrowth(Contender),
    /// The contender's peak resident memory (the largest of its runs at the
    /// measured size), below the bound in MB (when it was measured).
    PeakRssMb(Contender),
    /// The `run` daemon after its first sweep: resident memory below the
    /// bound in MB and no CPU tick over a quiet window (unless `--no-idle`).
    IdleDaemonMb,
}

/// The targets of the comparison (issue 1), in the order the table lists
/// them.
pub const TARGETS: &[Target] = &[
    Target {
        what: "sweep",
        measure: Measure::Ratio {
            numerator: Contender::JanitorPrune,
            denominator: Contender::EnginePrune,
            // The engine's own prune: Docker's or Podman's.
            against: None,
            decimals: 2,
        },
        bound: 0.6,
    },
    Target {
        what: "sweep",
        measure: Measure::Ratio {
            numerator: Contender::JanitorPrune,
            denominator: Contender::OneAtATime,
            against: Some("one-at-a-time"),
            decimals: 2,
        },
        bound: 0.45,
    },
    Target {
        what: "dry run",
        measure: Measure::Ratio {
            numerator: Contender::JanitorDryRun,
            denominator: Contender::RawList,
            against: Some("raw list"),
            decimals: 3,
        },
        bound: 1.3,
    },
    Target {
        what: "per-image sweep time",
        measure: Measure::PerImageGrowth(Contender::JanitorPrune),
        bound: 1.25,
    },
    Target {
        what: "prune peak RSS",
        measure: Measure::PeakRssMb(Contender::JanitorPrune),
        bound: 50.0,
    },
    Target {
        what: "run daemon idle",
        measure: Measure::IdleDaemonMb,
        bound: 15.0,
    },
];

impl Target {
    /// The contenders the target reads.
    pub fn contenders(&self) -> Vec<&Contender> {
        match &self.measure {
            Measure::Ratio {
                numerator,
                denominator,
                ..
            } => vec![numerator, denominator],
            Measure::PerImageGrowth(c) | Measure::PeakRssMb(c) => vec![c],
            Measure::IdleDaemonMb => Vec::new(),
        }
    }

    /// Its row of the targets table (`| target | measured | verdict |`),
    /// judged on `size`; `None` when the run did not measure it (one size
    /// only, no peak RSS, `--no-idle`).
    fn row(&self, results: &Results, size: &SizeResult) -> Option<String> {
        let bound = self.bound;
        let what = self.what;
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        let not_measured = |name: String| Some(format!("| {name} | not measured | |"));
        match &self.measure {
            Measure::Ratio {
                numerator,
                denominator,
                against,
                decimals,
            } => {
                let against =
                    against.map_or_else(|| denominator.name(family_of(results)), str::to_string);
                let name = format!("{what} ≤ {bound} × {against}");
                let (Some(n), Some(d)) = (size.median(numerator), size.median(denominator)) else {
                    return not_measured(name);
                };
                let r = n / d;
                Some(format!(
                    "| {name} | {r:.2} × ({n:.decimals$} s / {d:.decimals$} s) | {} |",
                    verdict(r <= bound)
                ))
            }
            Measure::PerImageGrowth(contender) => {
                let (small, large) = (results.sizes.first()?, results.sizes.last()?);
                if small.images == large.images {
                    return None;
                }
                let name = format!(
                    "{what} at {} at most {bound} × that at {}",
                    large.images, small.images
                );
                let per = |s: &SizeResult| Some(s.median(contender)? / s.images as f64);
                let (Some(large), Some(small)) = (per(large), per(small)) else {
                    return not_measured(name);
                };
                let r = large / small;
                Some(format!(
                    "| {name} | {r:.2} × ({:.0} µs / {:.0} µs) | {} |",
                    large * 1e6,
                    small * 1e6,
                    verdict(r <= bound)
                ))
            }
            Measure::PeakRssMb(contender) => {
                let mb = size.get(contender)?.peak_rss_kib_max? as f64 / 1024.0;
                Some(format!(
                    "| {what} < {bound} MB | {mb:.1} MB (max of runs) | {} |",
                    verdict(mb < bound)
                ))
            }
            Measure::IdleDaemonMb => {
                let idle = results.idle.as_ref()?;
                let mb = idle.rss_kib as f64 / 1024.0;
                Some(format!(
                    "| {what} < {bound} MB, no CPU | {mb:.1} MB, {} CPU ticks in {:.0} s after sweeping {} | {} |",
                    idle.cpu_ticks_over_window,
                    idle.window_seconds,
                    idle.images_swept_first,
                    verdict(mb < bound && idle.cpu_ticks_over_window == 0)
                ))
            }
        }
    }
}

/// The comparison's Markdown: time per contender at every size, where the
/// time goes at `main` images, and the [`TARGETS`] judged there.
pub fn compare_tables(results: &Results, main: usize) -> String {
    let mut out = String::new();
    let or_unknown = |s: &str| if s.is_empty() { "?" } else { s }.to_string();
    let _ = writeln!(
        out,
        "#### Engine {}: {} {}, {} store ({}), N = {main} labelled dangling images + {} decoys, measured {}\n",
        or_unknown(&results.engine_name),
        implementation(family_of(results)),
        results.engine,
        or_unknown(&results.store),
        results.storage_driver,
        results.decoys,
        results.date.get(..10).unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "{} CPUs, {} runs per contender at {main} images ({} at the other sizes), medians (min-max), seconds\n",
        results.cpus, results.runs, results.other_runs
    );
    times_table(&mut out, results);
    if let Some(size) = results.size(main) {
        where_the_time_goes(&mut out, size);
        targets_table(&mut out, results, size);
    }
    out
}

/// One row per contender (those of the first size), one column per size.
fn times_table(out: &mut String, results: &Results) {
    let _ = write!(out, "| contender |");
    for s in &results.sizes {
        let _ = write!(out, " {} images |", s.images);
    }
    let _ = write!(out, "\n| --- |");
    for _ in &results.sizes {
        let _ = write!(out, " --- |");
    }
    out.push('\n');
    for row in results.sizes.first().map_or(&[][..], |s| &s.contenders) {
        let _ = write!(out, "| {} |", row.name);
        for s in &results.sizes {
            match s.get(&row.contender) {
                Some(c) => {
                    let _ = write!(
                        out,
                        " {:.3} ({:.3}-{:.3}) |",
                        c.summary.median, c.summary.min, c.summary.max
                    );
                }
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    let _ = write!(out, "| seed (docker load), for reference |");
    for s in &results.sizes {
        match &s.seed_seconds {
            Some(seed) => {
                let _ = write!(out, " {:.3} |", seed.median);
            }
            None => out.push_str(" |"),
        }
    }
    out.push('\n');
}

/// Wall, engine CPU (and containerd's share) and client CPU per labelled
/// image, medians over the runs at `size`.
fn where_the_time_goes(out: &mut String, size: &SizeResult) {
    let _ = writeln!(
        out,
        "\nWhere the time goes at {} images (medians over the runs, per labelled image):\n",
        size.images
    );
    let _ = writeln!(
        out,
        "| contender | wall | engine CPU (dockerd + containerd) | of which containerd | client process CPU |\n| --- | --- | --- | --- | --- |"
    );
    let per = |secs: f64| format!("{:.0} µs", secs / size.images.max(1) as f64 * 1e6);
    for c in &size.contenders {
        let mut engine: Vec<f64> = c.samples.iter().map(|s| s.engine_cpu_seconds).collect();
        let mut containerd: Vec<f64> = c
            .samples
            .iter()
            .filter_map(|s| s.engine_cpu)
            .map(|cpu| cpu.containerd as f64 / CLOCK_TICKS_PER_SECOND)
            .collect();
        let mut client: Vec<f64> = c
            .samples
            .iter()
            .filter_map(|s| s.client_cpu_seconds)
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.name,
            per(c.summary.median),
            median(&mut engine).map_or_else(|| "?".to_string(), per),
            median(&mut containerd).map_or_else(|| "?".to_string(), per),
            median(&mut client).map_or_else(|| "in-process".to_string(), per),
        );
    }
}

/// The engine family a comparison ran on (Docker when its name is not
/// one of the matrix's: an old results file).
fn family_of(results: &Results) -> Family {
    MatrixEngine::named(&results.engine_name).map_or(Family::Docker, |e| e.family)
}

fn implementation(family: Family) -> &'static str {
    match family {
        Family::Docker => "Docker",
        Family::Podman => "Podman",
    }
}

/// The [`TARGETS`], judged at `size`.
fn targets_table(out: &mut String, results: &Results, size: &SizeResult) {
    let _ = writeln!(
        out,
        "\nTargets at {} images + {} decoys (ratios of medians):\n",
        size.images, size.decoys
    );
    let _ = writeln!(out, "| target | measured | |\n| --- | --- | --- |");
    for target in TARGETS {
        if let Some(row) = target.row(results, size) {
            let _ = writeln!(out, "{row}");
        }
    }
}

/// The Markdown table of a gentleness run.
pub fn gentle_table(results: &GentleResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#### Engine {}: {} {}, {} store ({}), N = {} labelled dangling images + {} decoys, measured {}\n",
        results.engine_name,
        implementation(
            MatrixEngine::named(&results.engine_name).map_or(Family::Docker, |e| e.family)
        ),
        results.engine,
        results.store,
        results.storage_driver,
        results.images,
        results.decoys,
        results.date.get(..10).unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "A `POST /commit` every {} ms on its own connection; {} round(s), commits pooled over the rounds; {} CPUs.\n",
        results.period_ms, results.rounds, results.cpus
    );
    let _ = writeln!(
        out,
        "| phase | commits | commit p50 | commit p99 | commit max | phase wall, median (min-max) | engine CPU per second |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in &results.phases {
        let latency = match &p.latency {
            Some(l) => format!(
                "{} | {:.1} ms | {:.1} ms{} | {:.1} ms",
                l.samples,
                l.p50_ms,
                l.p99_ms,
                if l.samples < 200 {
                    " (< 200 commits)"
                } else {
                    ""
                },
                l.max_ms
            ),
            None => "0 | | |".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {latency} | {:.2} s ({:.2}-{:.2}) | {:.2} s |",
            p.name, p.wall.median, p.wall.min, p.wall.max, p.engine_cpu_per_second
        );
    }
    out
}

/// Time against image count, one line per contender (medians, with a
/// min-max bar), as a self-contained SVG.
pub fn chart(results: &Results) -> String {
    const W: f64 = 760.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 270.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 50.0;
    const COLORS: &[&str] = &[
        "#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#b07aa1", "#9c755f", "#edc948",
    ];
    let max_x = results.sizes.iter().map(|s| s.images).max().unwrap_or(1) as f64;
    let max_y = results
        .sizes
        .iter()
        .flat_map(|s| s.contenders.iter().map(|c| c.summary.max))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let y_step = nice_step(max_y / 5.0);
    let y_top = (max_y / y_step).ceil() * y_step;
    let px = |x: f64| LEFT + x / max_x * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_top * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14">Time per run against labelled dangling images (+{} decoys), median and min-max</text>"#,
        results.decoys
    );
    let mut y = 0.0;
    while y <= y_top + y_step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{y} s</text>"##,
            W - RIGHT,
            py(y),
            py(y),
            LEFT - 6.0,
            py(y) + 4.0
        );
        y += y_step;
    }
    for s in &results.sizes {
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 5.0,
            H - BOTTOM + 18.0,
            s.images,
            x = px(s.images as f64)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">labelled dangling images</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    let lines = results.sizes.first().map_or(&[][..], |s| &s.contenders);
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, &Summary)> = results
            .sizes
            .iter()
            .filter_map(|s| {
                s.get(&line.contender)
                    .map(|c| (s.images as f64, &c.summary))
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, s)| format!("{:.1},{:.1}", px(*x), py(s.median)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (x, s) in &points {
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}"/><circle cx="{x:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                py(s.min),
                py(s.max),
                py(s.median),
                x = px(*x)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT + 15.0,
            W - RIGHT + 35.0,
            W - RIGHT + 40.0,
            ly + 4.0,
            xml_escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::contender::tests::every;
    use crate::bench::contender::{Contender, Phase};
    use crate::bench::procfs::EngineCpu;
    use crate::bench::results::{ContenderResult, IdleResult, PhaseResult, Sample};
    use crate::bench::stats::Latency;
    use crate::engine::Family;

    fn summary(secs: &[f64]) -> Summary {
        let d: Vec<Duration> = secs.iter().map(|s| Duration::from_secs_f64(*s)).collect();
        Summary::of(&d).expect("samples")
    }

    fn result(
        contender: Contender,
        family: Family,
        secs: f64,
        engine_cpu: EngineCpu,
    ) -> ContenderResult {
        let process = !matches!(
            contender,
            Contender::RawList | Contender::EnginePrune | Contender::OneAtATime
        );
        ContenderResult {
            name: contender.name(family),
            command: contender.command(family),
            contender,
            summary: summary(&[secs]),
            wall_per_image_us: 0.0,
            peak_rss_kib_max: process.then_some(12_000),
            samples: vec![Sample {
                seconds: secs,
                engine_cpu_seconds: engine_cpu.total_seconds(),
                engine_cpu: Some(engine_cpu),
                client_cpu_seconds: process.then_some(0.25),
                peak_rss_kib: process.then_some(12_000),
            }],
        }
    }

    fn results(sizes: Vec<SizeResult>) -> Results {
        Results {
            engine: "28.5.2".into(),
            engine_name: "28.5-containerd".into(),
            store: "containerd".into(),
            date: "2026-11-29T11:20:00Z".into(),
            storage_driver: "overlayfs".into(),
            cpus: 2,
            runs: 1,
            other_runs: 1,
            decoys: 100,
            sizes,
            idle: None,
        }
    }

    /// Every contender at 1000 and 2000 images, and the idle daemon: a run
    /// that measured everything a table shows.
    fn everything(family: Family) -> Results {
        let cpu = EngineCpu {
            dockerd: 150,
            containerd: 50,
            other: 0,
        };
        let size = |images: usize, seed: Option<Summary>| SizeResult {
            images,
            decoys: 100,
            seed_seconds: seed,
            contenders: every()
                .into_iter()
                .enumerate()
                .map(|(i, c)| result(c, family, images as f64 / 1000.0 * (i + 1) as f64, cpu))
                .collect(),
        };
        Results {
            idle: Some(IdleResult {
                images_swept_first: 2000,
                rss_kib: 9000,
                cpu_ticks_over_window: 0,
                window_seconds: 20.0,
            }),
            ..results(vec![size(1000, None), size(2000, Some(summary(&[3.0])))])
        }
    }

    #[test]
    fn the_compare_table_names_the_engine_and_splits_engine_cpu() {
        let cpu = EngineCpu {
            dockerd: 150,
            containerd: 50,
            other: 0,
        };
        let size = SizeResult {
            images: 2000,
            decoys: 100,
            seed_seconds: Some(summary(&[30.0])),
            contenders: vec![result(Contender::EnginePrune, Family::Docker, 4.0, cpu)],
        };
        let table = compare_tables(&results(vec![size]), 2000);
        assert!(
            table.starts_with("#### Engine 28.5-containerd: Docker 28.5.2, containerd store (overlayfs), N = 2000 labelled dangling images + 100 decoys, measured 2026-11-29\n"),
            "{table}"
        );
        // 4 s / 2000 images = 2000 µs wall; 2 s engine CPU = 1000 µs, of
        // which containerd 0.5 s = 250 µs.
        assert!(
            table.contains("| docker image prune | 2000 µs | 1000 µs | 250 µs | in-process |"),
            "{table}"
        );
        assert!(
            table.contains("| seed (docker load), for reference | 30.000 |"),
            "{table}"
        );
    }

    #[test]
    fn the_compare_table_renders_every_contender_without_nan() {
        for family in [Family::Docker, Family::Podman] {
            let results = everything(family);
            let table = compare_tables(&results, 2000);
            for c in every() {
                let name = c.name(family);
                // The times table and the where-the-time-goes table.
                assert_eq!(
                    table.matches(&format!("\n| {name} | ")).count(),
                    2,
                    "{name}: {table}"
                );
            }
            for bad in ["NaN", "inf", "not measured", "| ? |"] {
                assert!(!table.contains(bad), "{bad}: {table}");
            }
            let targets = table
                .split_once("| target | measured | |\n| --- | --- | --- |\n")
                .expect("a targets table")
                .1;
            assert_eq!(targets.lines().count(), TARGETS.len(), "{targets}");
            // The engine's own prune is one key: the ratio reads Podman's
            // prune on a Podman engine.
            assert!(
                targets.contains(
                    "| sweep ≤ 0.6 × docker image prune | 2.50 × (10.00 s / 4.00 s) | missed |"
                ),
                "{targets}"
            );
            let svg = chart(&results);
            for c in every() {
                assert!(svg.contains(&xml_escape(&c.name(family))), "{svg}");
            }
            assert!(!svg.contains("NaN"), "{svg}");
        }
    }

    #[test]
    fn the_targets_render_from_their_bounds() {
        let table = compare_tables(&everything(Family::Docker), 2000);
        for row in [
            "| sweep ≤ 0.6 × docker image prune | 2.50 × (10.00 s / 4.00 s) | missed |",
            "| sweep ≤ 0.45 × one-at-a-time | 1.67 × (10.00 s / 6.00 s) | missed |",
            "| dry run ≤ 1.3 × raw list | 4.00 × (8.000 s / 2.000 s) | missed |",
            "| per-image sweep time at 2000 at most 1.25 × that at 1000 | 1.00 × (5000 µs / 5000 µs) | met |",
            "| prune peak RSS < 50 MB | 11.7 MB (max of runs) | met |",
            "| run daemon idle < 15 MB, no CPU | 8.8 MB, 0 CPU ticks in 20 s after sweeping 2000 | met |",
        ] {
            assert!(table.contains(&format!("{row}\n")), "{row}\n{table}");
        }
    }

    #[test]
    fn a_target_without_its_contenders_says_so() {
        let mut results = everything(Family::Docker);
        for size in &mut results.sizes {
            size.contenders
                .retain(|c| c.contender != Contender::OneAtATime);
        }
        let table = compare_tables(&results, 2000);
        assert!(
            table.contains("| sweep ≤ 0.45 × one-at-a-time | not measured | |\n"),
            "{table}"
        );
        assert!(!table.contains("NaN"), "{table}");
    }

    #[test]
    fn every_target_reads_contenders_every_compare_run_times() {
        // A target's contenders are `Contender`s, so a misspelt one does
        // not compile; this checks that `compare` always times them.
        let lineup = Contender::lineup(&[], false);
        for target in TARGETS {
            for c in target.contenders() {
                assert!(lineup.contains(c), "{} reads {c:?}", target.what);
            }
        }
    }

    #[test]
    fn the_gentle_table_flags_a_p99_from_few_commits() {
        let phase = |phase: Phase, latencies: &[u64], wall: f64, cpu: u64| PhaseResult {
            name: phase.name(),
            phase,
            latency: Latency::of(
                &latencies
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect::<Vec<_>>(),
            ),
            wall: summary(&[wall]),
            engine_cpu_per_second: cpu as f64 / wall,
            runs: Vec::new(),
            latencies_ms: Vec::new(),
        };
        let idle: Vec<u64> = (1..=200).collect();
        let results = GentleResults {
            engine: "20.10.24".into(),
            engine_name: "20.10".into(),
            store: "classic".into(),
            storage_driver: "vfs".into(),
            date: "2026-11-29T11:20:00Z".into(),
            images: 500,
            decoys: 1000,
            rounds: 1,
            period_ms: 50,
            cpus: 2,
            phases: vec![
                phase(Phase::Idle, &idle, 10.0, 1),
                phase(Phase::EnginePrune, &[40, 10, 30, 20], 0.5, 1),
                phase(Phase::Janitor("4".into()), &[], 0.25, 1),
            ],
        };
        let table = gentle_table(&results);
        assert!(table.starts_with("#### Engine 20.10: Docker 20.10.24, classic store (vfs), N = 500 labelled dangling images + 1000 decoys, measured 2026-11-29\n"), "{table}");
        assert!(
            table.contains(
                "| idle | 200 | 100.0 ms | 198.0 ms | 200.0 ms | 10.00 s (10.00-10.00) | 0.10 s |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| docker image prune | 4 | 20.0 ms | 40.0 ms (< 200 commits) | 40.0 ms | 0.50 s (0.50-0.50) | 2.00 s |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| cascade-janitor prune --concurrency 4 | 0 | | | | 0.25 s (0.25-0.25) | 4.00 s |"
            ),
            "{table}"
        );
    }
}
