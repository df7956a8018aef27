//! `switchyard shadow`: a plugin's shadow version on a running router,
//! through its admin API (`/plugins/{name}/shadow`): attach a candidate,
//! show the comparison, promote or drop it.

use std::io::{Read, Write};
use std::process::ExitCode;

/// Attaches `file` as `plugin`'s shadow, or promotes or drops the shadow,
/// or (none of these) prints how it compares with the live version.
pub(super) fn run(
    admin: &str,
    token: Option<&str>,
    plugin: &str,
    file: Option<&std::path::Path>,
    promote: bool,
    drop: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/plugins/{plugin}/shadow");
    let (method, path, body) = match (file, promote, drop) {
        (Some(file), _, _) => {
            let wasm = std::fs::read(file).map_err(|e| {
                anyhow::anyhow!("{}: cannot read the candidate: {e}", file.display())
            })?;
            ("PUT", path, wasm)
        }
        (None, true, _) => ("POST", format!("{path}/promote"), Vec::new()),
        (None, false, true) => ("DELETE", path, Vec::new()),
        (None, false, false) => ("GET", path, Vec::new()),
    };
    let (status, text) = request(admin, method, &path, token, &body)?;
    if !(200..300).contains(&status) {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or(text);
        eprintln!(
            "switchyard shadow: {method} {admin}{path}: {status}: {}",
            detail.trim()
        );
        return Ok(ExitCode::FAILURE);
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match method {
        "GET" => print_report(plugin, &json),
        "PUT" => println!(
            "{plugin}: shadow {} runs beside live {}",
            json["shadow"].as_str().unwrap_or("?"),
            json["version"].as_str().unwrap_or("?")
        ),
        "POST" => println!(
            "{plugin}: {} is live; the shadow is dropped",
            json["version"].as_str().unwrap_or("?")
        ),
        _ => println!("{plugin}: shadow dropped"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a shadow report: the counts, then each differing event.
fn print_report(plugin: &str, r: &serde_json::Value) {
    println!(
        "{plugin}: shadow {} since {}: {} compared, {} equal, {} differing ({} errors), {} skipped",
        r["version"].as_str().unwrap_or("?"),
        r["since"].as_str().unwrap_or("?"),
        r["compared"],
        r["equal"],
        r["differing"],
        r["shadow_errors"],
        r["skipped"]
    );
    for d in r["newest"].as_array().into_iter().flatten() {
        println!(
            "\n{} {} at {}:",
            d["event_type"].as_str().unwrap_or("?"),
            d["event_id"].as_str().unwrap_or("?"),
            d["at"].as_str().unwrap_or("?")
        );
        for line in d["text"].as_str().unwrap_or_default().lines() {
            println!("  {line}");
        }
    }
}

/// One HTTP/1.1 request to the admin API at `base` (`http://host:port`).
fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--admin {base}: write it as http://host:port"))?
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host)
        .map_err(|e| anyhow::anyhow!("--admin {base}: cannot reach the router's admin API: {e}"))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}
