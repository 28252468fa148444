//! What `prune` shows while it removes: a bar on a terminal, a log line at
//! intervals otherwise. Bytes here are the removed images' sizes (an upper
//! bound, shared layers count in each); the final summary gives the space
//! actually reclaimed when it can be measured.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use cascade_cleanup::{ImageRef, SweepProgress, SweepReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cascade_config::Progress as Mode;

/// How often the log mode writes a line.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// The display `--progress` asks for.
pub fn for_prune(mode: Mode) -> Box<dyn SweepProgress> {
    let mode = match mode {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Log,
        other => other,
    };
    match mode {
        Mode::Bar => Box::new(Bar::new()),
        Mode::Log => Box::new(Log::new(LOG_EVERY)),
        Mode::None | Mode::Auto => Box::new(cascade_cleanup::NoProgress),
    }
}

struct Bar {
    bar: ProgressBar,
    bytes: Mutex<u64>,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "removing [{bar:30}] {pos}/{len} images, {msg}, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("{} of images", ByteSize(0)));
        Bar {
            bar,
            bytes: Mutex::new(0),
        }
    }
}

impl SweepProgress for Bar {
    fn started(&self, images: usize, _bytes: u64) {
        self.bar.set_length(images as u64);
        self.bar.set_message(format!("{} of images", ByteSize(0)));
    }

    fn advanced(&self, image: &ImageRef, removed: bool) {
        if removed {
            let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
            *bytes += image.size_bytes;
            self.bar
                .set_message(format!("{} of images", ByteSize(*bytes)));
        }
        self.bar.inc(1);
    }

    fn finished(&self, _report: &SweepReport) {
        self.bar.finish_and_clear();
    }
}

struct Log {
    every: Duration,
    state: Mutex<LogState>,
}

struct LogState {
    started: Instant,
    last: Instant,
    total: usize,
    done: usize,
    removed: usize,
    bytes: u64,
}

impl Log {
    fn new(every: Duration) -> Log {
        let now = Instant::now();
        Log {
            every,
            state: Mutex::new(LogState {
                started: now,
                last: now,
                total: 0,
                done: 0,
                removed: 0,
                bytes: 0,
            }),
        }
    }
}

impl SweepProgress for Log {
    fn started(&self, images: usize, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.started = Instant::now();
        s.last = s.started;
        s.total = images;
        if images > 0 {
            tracing::info!(
                images,
                bytes,
                "removing {images} images ({})",
                ByteSize(bytes)
            );
        }
    }

    fn advanced(&self, image: &ImageRef, removed: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += 1;
        if removed {
            s.removed += 1;
            s.bytes += image.size_bytes;
        }
        if s.last.elapsed() >= self.every && s.done < s.total {
            s.last = Instant::now();
            let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                done = s.done,
                total = s.total,
                removed = s.removed,
                bytes = s.bytes,
                "progress: {}/{} images, {} removed ({} of images), {rate:.0} images/s",
                s.done,
                s.total,
                s.removed,
                ByteSize(s.bytes),
            );
        }
    }
}
