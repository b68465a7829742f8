//! The EDGAR client against a tiny HTTP server on 127.0.0.1 that serves JSON fixtures and the shared
//! AAPL FY2022 filing, and records every request it sees.

mod common;
use common::shared_dir;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use xbrl::edgar::{DownloadRequest, EdgarClient, EdgarConfig, FiscalYearSource};

const USER_AGENT: &str = "finagent tests tests@example.com";
const AAPL_FOLDER: &str = "/Archives/edgar/data/320193/000032019322000108/";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    user_agent: Option<String>,
    at: Instant,
}

struct TestServer {
    base_url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl TestServer {
    /// Serves `route(path) -> (status, body)` until the test's runtime ends.
    async fn start(route: impl Fn(&str) -> (u16, Vec<u8>) + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let route = Arc::new(route);
        let server_hits = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (route, hits) = (Arc::clone(&route), Arc::clone(&server_hits));
                tokio::spawn(async move {
                    let Some((path, user_agent)) = read_request_head(&mut socket).await else { return };
                    hits.lock().unwrap().push(Hit { path: path.clone(), user_agent, at: Instant::now() });
                    let (status, body) = route(&path);
                    let head = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        if status == 200 { "OK" } else { "Error" },
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        TestServer { base_url, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn config(&self, cache_dir: Option<&Path>) -> EdgarConfig {
        EdgarConfig {
            data_base_url: self.base_url.clone(),
            archives_base_url: self.base_url.clone(),
            cache_dir: cache_dir.map(Path::to_path_buf),
            retries: 3,
            backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(20),
            ..EdgarConfig::new(USER_AGENT)
        }
    }
}

/// The request path and User-Agent; reads at most 64 KiB of head.
async fn read_request_head(socket: &mut tokio::net::TcpStream) -> Option<(String, Option<String>)> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = socket.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let user_agent = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("user-agent"))
        .map(|(_, value)| value.trim().to_string());
    Some((path, user_agent))
}

const COMPANY_TICKERS: &str = r#"{"0":{"cik_str":320193,"ticker":"AAPL","title":"Apple Inc."},
"1":{"cik_str":1045810,"ticker":"NVDA","title":"NVIDIA CORP"}}"#;

const AAPL_SUBMISSIONS: &str = r#"{"cik":"320193","name":"Apple Inc.","tickers":["AAPL"],"fiscalYearEnd":"0930",
"filings":{"recent":{
 "accessionNumber":["0000320193-23-000106","0000320193-23-000077","0000320193-22-000108","0000320193-22-000070"],
 "form":["10-K","10-Q","10-K","8-K"],
 "filingDate":["2023-11-03","2023-08-04","2022-10-28","2022-07-28"],
 "reportDate":["2023-09-30","2023-07-01","2022-09-24","2022-07-28"],
 "primaryDocument":["aapl-20230930.htm","aapl-20230701.htm","aapl-20220924.htm","aapl-20220728.htm"]},
"files":[]}}"#;

const AAPL_2022_FILES: [&str; 7] = [
    "aapl-20220924.htm",
    "aapl-20220924.xsd",
    "aapl-20220924_cal.xml",
    "aapl-20220924_def.xml",
    "aapl-20220924_htm.xml",
    "aapl-20220924_lab.xml",
    "aapl-20220924_pre.xml",
];

fn aapl_index() -> String {
    let names = AAPL_2022_FILES.iter().chain(&["FilingSummary.xml", "R1.htm", "0000320193-22-000108.txt"]);
    let items: Vec<String> =
        names.map(|name| format!(r#"{{"name":"{name}","type":"text.gif","size":"1"}}"#)).collect();
    format!(r#"{{"directory":{{"item":[{}],"name":"{AAPL_FOLDER}"}}}}"#, items.join(","))
}

/// Routes of an EDGAR look-alike backed by the shared AAPL FY2022 folder.
fn edgar_routes(filing_dir: PathBuf) -> impl Fn(&str) -> (u16, Vec<u8>) + Send + Sync + 'static {
    let index = aapl_index();
    move |path: &str| match path {
        "/files/company_tickers.json" => (200, COMPANY_TICKERS.as_bytes().to_vec()),
        "/submissions/CIK0000320193.json" => (200, AAPL_SUBMISSIONS.as_bytes().to_vec()),
        _ if path == format!("{AAPL_FOLDER}index.json") => (200, index.as_bytes().to_vec()),
        _ => {
            match path.strip_prefix(AAPL_FOLDER).filter(|name| !name.contains('/') && !name.contains("..")) {
                Some(name) => {
                    std::fs::read(filing_dir.join(name)).map_or((404, Vec::new()), |body| (200, body))
                }
                None => (404, Vec::new()),
            }
        }
    }
}

#[tokio::test]
async fn download_lands_the_filing_and_a_second_run_hits_the_cache() {
    let Some(shared) = shared_dir() else { return };
    let filing_dir = shared.join("xbrl/filings/AAPL/2022");
    let server = TestServer::start(edgar_routes(filing_dir.clone())).await;
    let temp = tempfile::tempdir().unwrap();
    let (cache_dir, out_dir) = (temp.path().join("cache"), temp.path().join("filings"));
    let request = DownloadRequest::annual(&["aapl"], &[2022], &out_dir);

    let client = EdgarClient::new(server.config(Some(&cache_dir))).unwrap();
    let report = client.download(&request).await.unwrap();
    assert!(report.not_found.is_empty(), "{:?}", report.not_found);
    assert_eq!(report.filings.len(), 1);
    let filing = &report.filings[0];
    assert_eq!((filing.accession.as_str(), filing.fiscal_year), ("0000320193-22-000108", 2022));
    assert_eq!(filing.fiscal_year_source, FiscalYearSource::Dei);
    assert_eq!(filing.dir, out_dir.join("AAPL/2022"));
    let mut on_disk: Vec<String> = std::fs::read_dir(&filing.dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, AAPL_2022_FILES, "only the XBRL files, under their EDGAR names");
    for name in AAPL_2022_FILES {
        let downloaded = std::fs::read(filing.dir.join(name)).unwrap();
        assert!(downloaded == std::fs::read(filing_dir.join(name)).unwrap(), "{name} differs");
    }

    let first_run = server.hits();
    assert_eq!(first_run.len(), 3 + AAPL_2022_FILES.len(), "{first_run:?}");
    assert!(first_run.iter().all(|hit| hit.user_agent.as_deref() == Some(USER_AGENT)), "{first_run:?}");
    let fetched_from_folder: Vec<&str> =
        first_run.iter().filter_map(|hit| hit.path.strip_prefix(AAPL_FOLDER)).collect();
    assert!(fetched_from_folder.contains(&"index.json") && !fetched_from_folder.contains(&"R1.htm"));

    let fresh_client = EdgarClient::new(server.config(Some(&cache_dir))).unwrap();
    let again = fresh_client.download(&request).await.unwrap();
    assert_eq!(again.filings, report.filings);
    assert_eq!(server.hits().len(), first_run.len(), "the second run was served from the cache");
}

#[tokio::test]
async fn a_429_is_retried() {
    let failures_left = AtomicU32::new(2);
    let server = TestServer::start(move |path: &str| match path {
        "/flaky"
            if failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok() =>
        {
            (429, b"slow down".to_vec())
        }
        "/flaky" => (200, b"ok".to_vec()),
        _ => (404, Vec::new()),
    })
    .await;
    let client = EdgarClient::new(server.config(None)).unwrap();
    let body = client.get(&format!("{}/flaky", server.base_url)).await.unwrap();
    assert_eq!(body, b"ok");
    let paths: Vec<String> = server.hits().into_iter().map(|hit| hit.path).collect();
    assert_eq!(paths, ["/flaky"; 3], "two 429s, then the 200");
}

#[tokio::test]
async fn server_errors_give_up_after_the_retries_and_404_is_not_retried() {
    let server = TestServer::start(|path: &str| match path {
        "/broken" => (503, Vec::new()),
        _ => (404, Vec::new()),
    })
    .await;
    let client = EdgarClient::new(server.config(None)).unwrap();
    let err = client.get(&format!("{}/broken", server.base_url)).await.unwrap_err().to_string();
    assert!(err.contains("/broken") && err.contains("503"), "{err}");
    assert_eq!(server.hits().len(), 4, "one attempt and three retries");
    let err = client.get(&format!("{}/missing", server.base_url)).await.unwrap_err().to_string();
    assert!(err.contains("/missing") && err.contains("404"), "{err}");
    assert_eq!(server.hits().len(), 5);
}

#[tokio::test]
async fn unknown_ticker_is_an_error_naming_it() {
    let server = TestServer::start(|path: &str| match path {
        "/files/company_tickers.json" => (200, COMPANY_TICKERS.as_bytes().to_vec()),
        _ => (404, Vec::new()),
    })
    .await;
    let client = EdgarClient::new(server.config(None)).unwrap();
    assert_eq!(client.cik_for_ticker("nvda").await.unwrap(), 1045810);
    let err = client.cik_for_ticker("ZZZZ").await.unwrap_err().to_string();
    assert!(err.contains("ZZZZ"), "{err}");
    let request = DownloadRequest::annual(&["ZZZZ"], &[2022], "/nonexistent");
    let err = client.download(&request).await.unwrap_err().to_string();
    assert!(err.contains("ZZZZ"), "{err}");
}

#[test]
fn a_user_agent_with_an_email_is_required() {
    for user_agent in ["", "   ", "finagent"] {
        let err = EdgarClient::new(EdgarConfig::new(user_agent)).err().unwrap().to_string();
        assert!(err.contains("Name email"), "{user_agent:?}: {err}");
    }
    assert!(EdgarClient::new(EdgarConfig::new(USER_AGENT)).is_ok());
}

#[tokio::test]
async fn concurrent_requests_share_the_rate_limit() {
    let server = TestServer::start(|_: &str| (200, b"pong".to_vec())).await;
    let client = EdgarClient::new(server.config(None)).unwrap();
    let n_requests = 15;
    let mut tasks = tokio::task::JoinSet::new();
    for request_idx in 0..n_requests {
        let (client, url) = (client.clone(), format!("{}/ping/{request_idx}", server.base_url));
        tasks.spawn(async move { client.get(&url).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let mut arrivals: Vec<Instant> = server.hits().iter().map(|hit| hit.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), n_requests);
    let max_in_one_second = (0..arrivals.len())
        .map(|first| {
            arrivals[first..]
                .iter()
                .take_while(|at| at.duration_since(arrivals[first]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let span_secs = arrivals[n_requests - 1].duration_since(arrivals[0]).as_secs_f64();
    println!(
        "{n_requests} requests over {span_secs:.3} s: {:.2} requests/s overall, at most {max_in_one_second} in any 1 s window",
        (n_requests - 1) as f64 / span_secs
    );
    assert!(max_in_one_second <= 10, "{max_in_one_second} requests within one second");
}
