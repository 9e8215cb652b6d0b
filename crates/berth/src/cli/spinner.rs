//! A spinner with a message for long CLI work, drawn on stderr only when it is a terminal (and
//! without colors: nothing here depends on `NO_COLOR`); off a terminal each message is a line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn start(message: &str) -> Spinner {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("{message}");
            return Spinner { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar: Some(bar) }
    }

    /// Shows `message` from now on.
    pub fn say(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => eprintln!("{message}"),
        }
    }

    /// Ends the spinner, leaving `message` as its last line.
    pub fn finish(self, message: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => eprintln!("{message}"),
        }
    }
}
