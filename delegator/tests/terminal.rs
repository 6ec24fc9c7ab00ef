//! `mcmc` in a real terminal (a pseudo-terminal this test opens): the chain table is redrawn
//! in place above the progress bar while the log lines scroll above both, and what is left on
//! the screen at the end is one table, the finished bar and the logs in order.

mod common;

use std::io::Read as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::process::Stdio;

use common::delegator_command;

/// The terminal's size.
const COLUMNS: usize = 120;
const ROWS: u16 = 40;

/// A pseudo-terminal of `COLUMNS` × `ROWS`: its controller and the device a program writes to.
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut controller, mut device) = (-1, -1);
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: COLUMNS as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors, which are owned from here on.
    let ok = unsafe {
        libc::openpty(
            &mut controller,
            &mut device,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ok, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nothing else.
    unsafe {
        (
            OwnedFd::from_raw_fd(controller),
            OwnedFd::from_raw_fd(device),
        )
    }
}

/// The screen a terminal of `COLUMNS` columns shows after `output`: the text, the cursor
/// movements and the erasures the display uses, lines wrapped at the width; colours ignored.
fn screen(output: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut column) = (0usize, 0usize);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        while lines.len() <= row {
            lines.push(Vec::new());
        }
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut parameter = String::new();
                let command = loop {
                    match chars.next() {
                        Some(c) if c.is_ascii_digit() || c == ';' => parameter.push(c),
                        Some(c) => break c,
                        None => break '\0',
                    }
                };
                let n: usize = parameter.parse().unwrap_or(1);
                match command {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' if parameter == "2" => lines[row].clear(),
                    'K' => lines[row].truncate(column),
                    'J' => {
                        lines.truncate(row + 1);
                        lines[row].truncate(column);
                    }
                    'm' => {}
                    other => panic!("an escape the display should not use: ESC[{parameter}{other}"),
                }
            }
            '\r' => column = 0,
            '\n' => {
                row += 1;
                column = 0;
            }
            c => {
                if column == COLUMNS {
                    row += 1;
                    column = 0;
                    while lines.len() <= row {
                        lines.push(Vec::new());
                    }
                }
                let line = &mut lines[row];
                if line.len() <= column {
                    line.resize(column + 1, ' ');
                }
                line[column] = c;
                column += 1;
            }
        }
    }
    lines
        .into_iter()
        .map(|line| line.into_iter().collect::<String>().trim_end().to_owned())
        .collect()
}

#[test]
fn the_chain_table_is_redrawn_in_place_on_a_terminal() {
    let dir = std::env::temp_dir().join(format!("ganger-terminal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"nJobTypes": 2, "nStacks": 2, "nTemperatures": 3, "nSamplesTotal": 200000,
                "min": [-10, -10], "max": [10, 10], "loggingRateSec": 0.1,
                "outputPath": "{}"}}"#,
            dir.join("out").display()
        ),
    )
    .unwrap();
    let (controller, device) = open_pty();
    let mut child = delegator_command()
        .args(["mcmc", "--local-workers", "1", "--config"])
        .arg(&config)
        .env("GANGER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(device.try_clone().unwrap()))
        .stderr(Stdio::from(device))
        .spawn()
        .expect("the delegator starts");
    // Read until the terminal closes with the child (EIO on Linux), so it never blocks on a
    // full terminal.
    let mut bytes = Vec::new();
    let mut reader = std::fs::File::from(controller);
    let mut chunk = [0; 65536];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    let status = child.wait().unwrap();
    let output = String::from_utf8_lossy(&bytes);
    assert!(status.success(), "{output}");

    // Drawn many times, in place: the raw output holds every table, the screen only the last.
    let drawn = output.matches("GlbSwapRt").count();
    assert!(drawn >= 3, "the table was drawn {drawn} times:\n{output}");
    let shown = screen(&output);
    let text = shown.join("\n");
    assert_eq!(
        shown.iter().filter(|l| l.contains("GlbSwapRt")).count(),
        1,
        "{text}"
    );
    // It is the final table: every chain at its last step, then the finished bar, and the
    // logs in the order they were written, the first above the table, the last below the
    // posterior (which went to the terminal too, as stdout).
    let at = |needle: &str| {
        shown
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} on the screen:\n{text}"))
    };
    let header = at("GlbSwapRt");
    for chain in 0..6 {
        let row = &shown[header + 1 + chain];
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(words[..2], [chain.to_string().as_str(), "100000"], "{text}");
    }
    assert!(at("mcmc run starting") < header, "{text}");
    assert!(header < at("100% 100,000/100,000 steps"), "{text}");
    assert!(at("100% 100,000/100,000 steps") < at("ESS bulk"), "{text}");
    assert!(at("ESS bulk") < at("mcmc run done"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
