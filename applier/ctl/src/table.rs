//! Output helpers: kubectl-style aligned columns, ages, and the fields every Ferry status has.

use serde_json::Value;

/// Prints `rows` under `header`, columns padded to their widest cell plus three spaces.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// `5s`, `3m`, `2h`, `4d`: the time since an RFC 3339 timestamp, as kubectl prints ages.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The `Ready` condition of a status: (status, message), `Unknown` when absent.
pub fn ready(status: &Value) -> (String, String) {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("Unknown").to_string(),
                first_line(c["message"].as_str().unwrap_or_default()),
            )
        })
        .unwrap_or_else(|| ("Unknown".into(), "waiting to be reconciled".into()))
}

/// The first line of a multi-line message (tables stay one line per object).
pub fn first_line(s: &str) -> String {
    let mut lines = s.lines();
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

/// `True`/`False` for a `spec.suspend` value.
pub fn suspended(spec: &Value) -> String {
    if spec["suspend"].as_bool().unwrap_or(false) {
        "True".into()
    } else {
        "False".into()
    }
}
