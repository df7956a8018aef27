//! A minimal HTTP/1.1 client over std, for the admin API tests.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends one request to `url` (`http://host:port/path`); returns status and
/// body. Panics if the server cannot be reached.
pub fn request(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    try_request(method, url, token, body).expect("admin API reachable")
}

/// [`request`], or why the server could not be reached or read.
pub fn try_request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(host)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Undo chunked encoding, which axum uses for streamed bodies.
    let chunked = text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((status, if chunked { dechunk(&body) } else { body }))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET, returning the body; panics unless 200.
pub fn get(url: &str) -> String {
    let (status, body) = request("GET", url, None, b"");
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// Polls `/readyz` for `span` (while the broker is down, say) and says
/// whether it was ever 503 because the brokers were unreachable, with
/// `/api/summary` saying so too.
pub fn unready_during(url: &str, span: std::time::Duration) -> bool {
    let since = std::time::Instant::now();
    let mut seen = false;
    while since.elapsed() < span {
        let probe = try_request("GET", &format!("{url}/readyz"), None, b"");
        if let Ok((503, body)) = probe
            && body.contains("unreachable")
        {
            let summary = get(&format!("{url}/api/summary"));
            assert!(summary.contains("unreachable"), "{summary}");
            seen = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    seen
}
