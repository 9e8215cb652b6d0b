//! `berth cli-reference`: every command and flag of the CLI as Markdown, from its clap definition
//! (the documentation's command-line reference is this output, checked by the test command).

use clap::Command;
use std::fmt::Write;

/// The reference of `root` and its visible subcommands.
pub fn markdown(root: &Command) -> String {
    let mut out = String::from(
        "# Command line\n\nEvery `berth` command and flag, generated from the command's own definition \
         (`berth cli-reference`). Flags with an environment variable can be set by it; `berth <command> --help` \
         prints the same. Exit status: 0 on success, 1 when the command failed (the reason is on stderr), \
         2 when its arguments are wrong. `NO_COLOR` (set and not empty) turns colored output off.\n",
    );
    for sub in root.get_subcommands().filter(|c| !c.is_hide_set()) {
        command(&mut out, root.get_name(), sub);
    }
    out
}

fn command(out: &mut String, parent: &str, c: &Command) {
    let name = format!("{parent} {}", c.get_name());
    let _ = write!(out, "\n## `{name}`\n\n");
    if let Some(about) = c.get_long_about().or(c.get_about()) {
        let _ = writeln!(out, "{}\n", about.to_string().trim());
    }
    let args: Vec<&clap::Arg> = c.get_arguments().filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version").collect();
    if !args.is_empty() {
        out.push_str("| Argument | Environment | Default | Meaning |\n|---|---|---|---|\n");
        for a in args {
            let flag = match (a.get_long(), a.get_short()) {
                (Some(long), _) => format!("`--{long}`"),
                (None, Some(short)) => format!("`-{short}`"),
                (None, None) => format!("`<{}>`", a.get_id().as_str().to_uppercase()),
            };
            let env = a.get_env().map(|e| format!("`{}`", e.to_string_lossy())).unwrap_or_default();
            let default = a.get_default_values().iter().map(|v| format!("`{}`", v.to_string_lossy())).collect::<Vec<_>>().join(", ");
            let mut help = a
                .get_long_help()
                .or(a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
                .replace('\n', " ")
                .replace('|', "\\|")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let values: Vec<String> =
                a.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| format!("`{}`", v.get_name())).collect();
            if !values.is_empty() && a.get_action().takes_values() {
                let _ = write!(help, " One of {}.", values.join(", "));
            }
            let _ = writeln!(out, "| {flag} | {env} | {default} | {} |", help.trim());
        }
    }
    for sub in c.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(out, &name, sub);
    }
}
