//! Polite HTTP GETs for EDGAR: one shared rate limit, bounded retries with exponential backoff on
//! 429/5xx/connection errors, and an on-disk cache written atomically (temp file + rename).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Longest wait between two attempts, whatever the backoff or `Retry-After` ask for.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The limiter spaces requests 2% wider than `1 / rate`, so that jitter between the moment a slot
/// opens and the moment the server sees the request cannot put one request too many in a second.
const INTERVAL_MARGIN: f64 = 1.02;

/// Hands out request slots at most `rate` per second, shared by all clones and concurrent callers.
pub(crate) struct RateLimiter {
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(max_requests_per_sec: u32) -> Self {
        let interval = Duration::from_secs_f64(INTERVAL_MARGIN / f64::from(max_requests_per_sec.max(1)));
        Self { interval, next_slot: Mutex::new(None) }
    }

    /// Waits for the next free slot.
    pub(crate) async fn acquire(&self) {
        let slot = {
            let mut next_slot = self.next_slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let slot = next_slot.map_or(now, |next| next.max(now));
            *next_slot = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Responses stored under `<dir>/<host>/<path>`, one file per URL.
pub(crate) struct DiskCache {
    dir: PathBuf,
    max_age: Option<Duration>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskCache {
    pub(crate) fn new(dir: PathBuf, max_age: Option<Duration>) -> Self {
        Self { dir, max_age }
    }

    /// The cached body of `url`, if present and young enough; unreadable entries count as misses.
    pub(crate) async fn get(&self, url: &str) -> Option<Vec<u8>> {
        let path = self.path_for(url);
        let metadata = tokio::fs::metadata(&path).await.ok()?;
        if let Some(max_age) = self.max_age {
            let modified = metadata.modified().ok()?;
            let age = SystemTime::now().duration_since(modified).unwrap_or_default();
            if age > max_age {
                return None;
            }
        }
        tokio::fs::read(&path).await.ok()
    }

    pub(crate) async fn put(&self, url: &str, body: &[u8]) -> Result<()> {
        write_atomically(&self.path_for(url), body).await
    }

    /// `https://data.sec.gov/submissions/CIK0000320193.json` ->
    /// `<dir>/data.sec.gov/submissions/CIK0000320193.json`; a query string becomes part of the name.
    pub(crate) fn path_for(&self, url: &str) -> PathBuf {
        let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (path_part, query) = match without_scheme.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (without_scheme, None),
        };
        let mut segments: Vec<String> =
            path_part.split('/').filter(|s| !s.is_empty()).map(sanitize_segment).collect();
        if path_part.ends_with('/') || segments.len() < 2 {
            segments.push("index".to_string());
        }
        if let (Some(query), Some(last)) = (query, segments.last_mut()) {
            last.push_str("_q_");
            last.push_str(&sanitize_segment(query));
        }
        segments.iter().fold(self.dir.clone(), |path, segment| path.join(segment))
    }
}

fn sanitize_segment(segment: &str) -> String {
    let cleaned: String = segment
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    if cleaned.chars().all(|c| c == '.') {
        "_".repeat(cleaned.len().max(1))
    } else {
        cleaned
    }
}

/// Writes `body` to a temporary file next to `path`, then renames it over `path`, so readers never
/// see half a file.
pub(crate) async fn write_atomically(path: &Path, body: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent).await.map_err(|source| Error::io(parent, source))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("download");
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = parent.join(format!(".{name}.tmp-{}-{counter}", std::process::id()));
    tokio::fs::write(&temp, body).await.map_err(|source| Error::io(&temp, source))?;
    if let Err(source) = tokio::fs::rename(&temp, path).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(Error::io(path, source));
    }
    Ok(())
}

/// Retry policy: `retries` extra attempts, waiting `backoff * 2^attempt` (or `Retry-After`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
}

impl RetryPolicy {
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.backoff.saturating_mul(2u32.saturating_pow(attempt));
        retry_after.unwrap_or(exponential).min(MAX_BACKOFF)
    }
}

/// Rate-limited, retried, cached GET of a whole body. Only 2xx bodies are cached.
pub(crate) async fn get_bytes(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    cache: Option<&DiskCache>,
    policy: RetryPolicy,
    url: &str,
) -> Result<Vec<u8>> {
    if let Some(body) = match cache {
        Some(cache) => cache.get(url).await,
        None => None,
    } {
        return Ok(body);
    }
    let mut attempt: u32 = 0;
    loop {
        limiter.acquire().await;
        let failure = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(body) => {
                    if let Some(cache) = cache {
                        cache.put(url, &body).await?;
                    }
                    return Ok(body.to_vec());
                }
                Err(err) => Failure {
                    message: format!("reading body failed: {err}"),
                    retryable: true,
                    retry_after: None,
                },
            },
            Ok(response) => {
                let status = response.status();
                Failure {
                    message: format!("HTTP {status}"),
                    retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                    retry_after: retry_after(&response),
                }
            }
            Err(err) => Failure {
                message: format!("request failed: {err}"),
                retryable: err.is_connect() || err.is_timeout(),
                retry_after: None,
            },
        };
        if !failure.retryable || attempt >= policy.retries {
            let n_attempts = attempt + 1;
            return Err(Error::Edgar(format!(
                "GET {url}: {} (after {n_attempts} attempts)",
                failure.message
            )));
        }
        tokio::time::sleep(policy.delay(attempt, failure.retry_after)).await;
        attempt += 1;
    }
}

struct Failure {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// `Retry-After` in seconds (the HTTP-date form is ignored; the backoff applies then).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_stay_inside_the_cache() {
        let cache = DiskCache::new(PathBuf::from("/c"), None);
        assert_eq!(
            cache.path_for("https://data.sec.gov/submissions/CIK0000320193.json"),
            PathBuf::from("/c/data.sec.gov/submissions/CIK0000320193.json")
        );
        assert_eq!(
            cache.path_for("http://127.0.0.1:8080/a/../b?x=1"),
            PathBuf::from("/c/127.0.0.1_8080/a/__/b_q_x_1")
        );
        assert_eq!(cache.path_for("https://www.sec.gov/"), PathBuf::from("/c/www.sec.gov/index"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy { retries: 5, backoff: Duration::from_millis(100) };
        assert_eq!(policy.delay(0, None), Duration::from_millis(100));
        assert_eq!(policy.delay(3, None), Duration::from_millis(800));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(policy.delay(30, None), MAX_BACKOFF);
    }
}
