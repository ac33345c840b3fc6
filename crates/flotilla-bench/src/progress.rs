//! Progress of a long phase: a bar on a terminal, a line every tenth of the way otherwise
//! (a log file or CI reads those).

use std::time::Instant;

/// The progress of one phase towards `total`.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    name: String,
    total: u64,
    started: Instant,
    /// The last tenth reported as a line (without a terminal), and when.
    reported: parking_lot::Mutex<(u64, Instant)>,
}

impl Progress {
    /// Starts showing `name` at 0 of `total`.
    pub(crate) fn new(name: &str, total: u64) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} {elapsed:>4} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        if bar.is_none() {
            eprintln!("{name}: 0/{total}");
        }
        Self {
            bar,
            name: name.to_string(),
            total,
            started: Instant::now(),
            reported: parking_lot::Mutex::new((0, Instant::now())),
        }
    }

    /// `done` of the total are done.
    pub(crate) fn set(&self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                // A line for each tenth of the way, at most one every 5 s.
                let tenth = (done * 10).checked_div(self.total).unwrap_or(10);
                let mut last = self.reported.lock();
                if tenth > last.0
                    && done < self.total
                    && last.1.elapsed() >= std::time::Duration::from_secs(5)
                {
                    *last = (tenth, Instant::now());
                    eprintln!(
                        "{}: {done}/{} ({:.1} s)",
                        self.name,
                        self.total,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }

    /// What the phase is doing now: beside the bar, or a line of its own.
    pub(crate) fn message(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(text.to_string()),
            None => eprintln!("{}: {text}", self.name),
        }
    }

    /// A passing note (the last repetition's figure): beside the bar only.
    pub(crate) fn note(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    /// The phase is over; `summary` says how it went.
    pub(crate) fn finish(self, summary: &str) {
        let line = format!(
            "{}: {summary} ({:.1} s)",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{line}");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
