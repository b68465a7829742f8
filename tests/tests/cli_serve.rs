//! End-to-end tests of `finagent serve`: concurrent `POST /ask` and `POST /tag` requests answered
//! by one loaded model, `/tag` against `finagent tag`, the error statuses, and graceful shutdown,
//! over a plain std `TcpStream` HTTP/1.1 client.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{binary, finagent, model, shared, stderr, stdout};

use serde_json::Value;

/// Model loading in a debug build on a busy machine can be slow; a hung server must still fail.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `finagent serve`, killed when dropped so a failing test leaves no server behind.
struct Served {
    child: Child,
    addr: String,
    /// Everything the server wrote to stderr so far.
    log: Arc<Mutex<String>>,
    /// Drains stderr into `log`; ends when the server exits.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(home: &Path, model: &Path, shared: &Path) -> Served {
        let mut child = Command::new(binary())
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2"])
            .env("FINAGENT_HOME", home)
            .env("FINAGENT_MODEL", model)
            .env("FINAGENT_SHARED", shared)
            .env_remove("FINAGENT_DATA")
            .env_remove("FINAGENT_INDEX")
            .env_remove("FINAGENT_XBRL_MIRROR")
            .env_remove("FINAGENT_EDGAR_USER_AGENT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("finagent serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (lines_sender, lines) = mpsc::channel();
        let server_stderr = child.stderr.take().expect("piped stderr");
        let log_writer = Arc::clone(&log);
        // Keep draining stderr after startup, or the request log would fill the pipe and block the server.
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(server_stderr).lines().map_while(Result::ok) {
                log_writer.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines_sender.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        break rest
                            .split_whitespace()
                            .next()
                            .expect("an address after `listening on`")
                            .to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("serve did not print `listening on`: {}", log.lock().unwrap());
                }
            }
        };
        Served { child, addr, log, stderr_reader: Some(stderr_reader) }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct HttpResponse {
    status: u16,
    head: String,
    body: String,
}

impl HttpResponse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, so the body ends at EOF);
/// `declared_length` overrides the Content-Length header.
fn http(addr: &str, method: &str, path: &str, body: &str, declared_length: Option<usize>) -> HttpResponse {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let length = declared_length.unwrap_or(body.len());
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|error| panic!("{method} {path}: no response: {error}"));
    let (head, body) =
        response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("a status code");
    HttpResponse { status, head: head.to_string(), body: body.to_string() }
}

fn ask_body(question: &str) -> String {
    serde_json::json!({ "question": question }).to_string()
}

fn tag_body(text: &str, use_model: bool) -> String {
    serde_json::json!({ "text": text, "use_model": use_model }).to_string()
}

const REVENUE_QUESTION: &str = "What was AAPL's 2022 revenue?";
const AAPL_2022_REVENUE: &str = "394328000000";
/// A sentence as FiNER writes them: two numbers to tag, money and a percent.
const FINER_SENTENCE: &str =
    "The interest rate swap effectively converts $ 200,000 of variable rate debt to \
     a fixed rate of 1.798 % .";

/// The mentions of a `POST /tag` body, each checked to be well formed: its span read back from
/// its sentence, its tag and runners-up from `tag_set`, confidences in (0, 1], best first.
fn checked_mentions(body: &Value, tag_set: &[String]) -> Vec<Value> {
    let mentions = body["mentions"].as_array().unwrap_or_else(|| panic!("no mentions list in {body}"));
    for mention in mentions {
        let sentence = mention["sentence"].as_str().expect("sentence");
        let (start, end) =
            (mention["start"].as_u64().unwrap() as usize, mention["end"].as_u64().unwrap() as usize);
        assert_eq!(sentence.get(start..end), mention["span"].as_str(), "{mention}");
        assert!(mention["value"].is_string() && mention["unit"].is_string(), "{mention}");
        let tag = mention["tag"].as_str().expect("tag");
        assert!(tag_set.iter().any(|known| known == tag), "{tag} is not a FiNER-139 tag: {mention}");
        let confidence = mention["confidence"].as_f64().expect("confidence");
        assert!(confidence > 0.0 && confidence <= 1.0, "{mention}");
        let candidates = mention["candidates"].as_array().expect("candidates");
        assert_eq!(candidates.len(), 2, "{mention}");
        for candidate in candidates {
            let runner_up = candidate["tag"].as_str().expect("candidate tag");
            assert!(tag_set.iter().any(|known| known == runner_up), "{mention}");
            assert_ne!(runner_up, tag, "{mention}");
            assert!(candidate["confidence"].as_f64().expect("confidence") <= confidence, "{mention}");
        }
        assert!(mention.get("gold").is_none(), "{mention}");
    }
    mentions.clone()
}

#[test]
fn serve_answers_concurrent_asks_and_maps_errors_to_statuses() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let aapl = shared.join("xbrl/filings/AAPL/2022");
    let nvda = shared.join("xbrl/filings/NVDA/2023");
    let indexed = finagent(home.path(), &["index", aapl.to_str().unwrap(), nvda.to_str().unwrap()], &[]);
    assert!(indexed.status.success(), "index failed: {}", stderr(&indexed));

    let tag_set: Vec<String> = std::fs::read_to_string(shared.join("data/finer/tag_set.txt"))
        .expect("FiNER-139 tag list")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    let examples = shared.join("data/finer/train.jsonl");

    let server = Served::start(home.path(), &model, &shared);
    let health = http(&server.addr, "GET", "/health", "", None);
    assert_eq!(health.status, 200, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    assert!(health["facts_indexed"].as_u64().unwrap() > 1000, "{health}");
    assert_eq!(health["companies"], serde_json::json!(["AAPL", "NVDA"]), "{health}");
    assert!(health["adapter"].as_str().unwrap().starts_with("bundled"), "{health}");
    let tagging = &health["tagging"];
    assert_eq!(tagging["available"], true, "{health}");
    assert_eq!(tagging["tags"], tag_set.len(), "{health}");
    assert_eq!(tagging["examples"], examples.to_str().unwrap(), "{health}");
    // FiNER's train split is 1,606 rows; a few name a number the mention finder cannot place.
    assert!(tagging["examples_learned"].as_u64().unwrap() > 1500, "{health}");

    // Two asks and two tag requests (ranking alone, and re-scored by the model) at once, from
    // four threads, against the one loaded model and its two workers.
    let requests = [
        ("/ask", ask_body(REVENUE_QUESTION)),
        ("/ask", ask_body(REVENUE_QUESTION)),
        ("/tag", tag_body(FINER_SENTENCE, false)),
        ("/tag", tag_body(FINER_SENTENCE, true)),
    ];
    let clients: Vec<_> = requests
        .into_iter()
        .map(|(path, body)| {
            let addr = server.addr.clone();
            std::thread::spawn(move || http(&addr, "POST", path, &body, None))
        })
        .collect();
    let mut responses: Vec<HttpResponse> = clients.into_iter().map(|client| client.join().unwrap()).collect();
    let tagged_with_model = responses.pop().unwrap();
    let tagged = responses.pop().unwrap();
    let answers = responses;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, server.log());
        assert!(
            answer.head.to_ascii_lowercase().contains("content-type: application/json"),
            "{}",
            answer.head
        );
        let answer = answer.json();
        for key in
            ["kind", "question", "answer", "value", "fiscal_year", "ticker", "agrees_with_facts", "retrieved"]
        {
            assert!(answer.get(key).is_some(), "missing key {key} in {answer}");
        }
        assert_eq!(answer["ticker"], "AAPL");
        assert_eq!(answer["question"], REVENUE_QUESTION);
        let retrieved: Vec<&Value> =
            answer["retrieved"].as_array().unwrap().iter().map(|f| &f["value"]).collect();
        assert!(retrieved.contains(&&Value::from(AAPL_2022_REVENUE)), "{answer}");
        // The model may disagree with every fact; then no value is given, never a wrong one.
        if answer["agrees_with_facts"] == true {
            assert_eq!(answer["value"], AAPL_2022_REVENUE, "{answer}");
        } else {
            assert!(answer["value"].is_null(), "{answer}");
        }
    }
    // Sharing the model between requests changes nothing: greedy answers are identical.
    assert_eq!(answers[0].json(), answers[1].json());
    // And the body is what `finagent ask --json` prints.
    let cli = finagent(home.path(), &["ask", "--json", REVENUE_QUESTION], &[("FINAGENT_MODEL", &model)]);
    assert!(cli.status.success(), "ask failed: {}", stderr(&cli));
    assert_eq!(answers[0].body, stdout(&cli));

    // Both numbers of the FiNER sentence are tagged, with and without the model.
    for response in [&tagged, &tagged_with_model] {
        assert_eq!(response.status, 200, "{}\n{}", response.body, server.log());
        let mentions = checked_mentions(&response.json(), &tag_set);
        let spans: Vec<&str> = mentions.iter().map(|mention| mention["span"].as_str().unwrap()).collect();
        assert_eq!(spans, ["200,000", "1.798"], "{}", response.body);
        assert_eq!(mentions[1]["unit"], "percent", "{}", response.body);
    }
    // Without the model, the mentions are the lines `finagent tag` prints for the same text and
    // the same examples.
    let text_file = home.path().join("finer-sentence.txt");
    std::fs::write(&text_file, FINER_SENTENCE).unwrap();
    let cli = finagent(
        home.path(),
        &["tag", text_file.to_str().unwrap(), "--examples", examples.to_str().unwrap()],
        &[("FINAGENT_SHARED", &shared)],
    );
    assert!(cli.status.success(), "tag failed: {}", stderr(&cli));
    let cli_lines: Vec<Value> =
        stdout(&cli).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(tagged.json()["mentions"], Value::from(cli_lines), "{}", tagged.body);

    let no_numbers = http(
        &server.addr,
        "POST",
        "/tag",
        &tag_body("Revenue grew because more iPhones were sold.", false),
        None,
    );
    assert_eq!(no_numbers.status, 200, "{}", no_numbers.body);
    assert_eq!(no_numbers.json()["mentions"], serde_json::json!([]), "{}", no_numbers.body);
    assert!(no_numbers.json()["note"].as_str().unwrap().contains("no numbers"), "{}", no_numbers.body);
    let empty_text = http(&server.addr, "POST", "/tag", &tag_body("  ", false), None);
    assert_eq!(empty_text.status, 400, "{}", empty_text.body);
    assert!(empty_text.json()["error"].as_str().unwrap().contains("text is empty"), "{}", empty_text.body);
    let no_text = http(&server.addr, "POST", "/tag", "{}", None);
    assert_eq!(no_text.status, 400, "{}", no_text.body);
    assert!(no_text.json()["error"].as_str().unwrap().contains("missing field `text`"), "{}", no_text.body);
    let too_long_text = "Sales were $ 5 million . ".repeat(3000);
    let too_large_tag = http(&server.addr, "POST", "/tag", &tag_body(&too_long_text, false), None);
    assert_eq!(too_large_tag.status, 413, "{}", too_large_tag.body);

    let malformed = http(&server.addr, "POST", "/ask", "{\"question\": ", None);
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(malformed.json()["error"].as_str().unwrap().contains("request body is not an ask request"));
    let no_question = http(&server.addr, "POST", "/ask", "{\"q\": \"x\"}", None);
    assert_eq!(no_question.status, 400, "{}", no_question.body);
    assert!(no_question.json()["error"].as_str().unwrap().contains("missing field `question`"));

    let unknown_company =
        http(&server.addr, "POST", "/ask", &ask_body("What was ZZZZ's 2022 revenue?"), None);
    assert_eq!(unknown_company.status, 422, "{}", unknown_company.body);
    let message = unknown_company.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("no known company") && message.contains("AAPL"), "{message}");
    // Resolved, but the index holds no such fact: the refusal comes from retrieval, still a 422.
    let no_fact = http(&server.addr, "POST", "/ask", &ask_body("What was AAPL's 2031 revenue?"), None);
    assert_eq!(no_fact.status, 422, "{}", no_fact.body);
    assert!(no_fact.json()["error"].as_str().unwrap().contains("2031"), "{}", no_fact.body);

    // A comparison: one element per company named, in order, as `finagent ask --json` prints it;
    // NVDA's fiscal 2022 revenue (26,914 M) is a comparative column of its FY2023 10-K.
    let comparison = "Compare AAPL and NVDA revenue in 2022";
    let compared = http(&server.addr, "POST", "/ask", &ask_body(comparison), None);
    assert_eq!(compared.status, 200, "{}\n{}", compared.body, server.log());
    let outcomes = compared.json();
    let outcomes = outcomes.as_array().expect("one element per company");
    assert_eq!(outcomes.len(), 2, "{}", compared.body);
    for (outcome, (ticker, revenue)) in
        outcomes.iter().zip([("AAPL", AAPL_2022_REVENUE), ("NVDA", "26914000000")])
    {
        assert_eq!(outcome["ticker"], ticker, "{outcome}");
        let retrieved: Vec<&Value> =
            outcome["retrieved"].as_array().unwrap().iter().map(|f| &f["value"]).collect();
        assert!(retrieved.contains(&&Value::from(revenue)), "{outcome}");
    }
    let cli = finagent(home.path(), &["ask", "--json", comparison], &[("FINAGENT_MODEL", &model)]);
    assert!(cli.status.success(), "ask failed: {}", stderr(&cli));
    assert_eq!(compared.body, stdout(&cli));
    // A year neither filed: a refusal per company, naming it and the year.
    let refused = http(&server.addr, "POST", "/ask", &ask_body("AAPL vs NVDA revenue in 2031"), None);
    assert_eq!(refused.status, 200, "{}", refused.body);
    for (outcome, ticker) in refused.json().as_array().expect("elements").iter().zip(["AAPL", "NVDA"]) {
        assert_eq!(outcome["ticker"], ticker, "{outcome}");
        assert!(outcome["error"].as_str().unwrap().contains("2031"), "{outcome}");
    }

    let unknown_path = http(&server.addr, "POST", "/nope", &ask_body(REVENUE_QUESTION), None);
    assert_eq!(unknown_path.status, 404, "{}", unknown_path.body);
    assert!(unknown_path.json()["error"].as_str().unwrap().contains("POST /tag"), "{}", unknown_path.body);
    let tag_by_get = http(&server.addr, "GET", "/tag", "", None);
    assert_eq!(tag_by_get.status, 405, "{}", tag_by_get.body);
    let wrong_method = http(&server.addr, "GET", "/ask", "", None);
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.body);
    assert!(wrong_method.head.to_ascii_lowercase().contains("allow: post"), "{}", wrong_method.head);
    // Refused from the declared length, before any of the body is read.
    let too_large = http(&server.addr, "POST", "/ask", "", Some(1 << 20));
    assert_eq!(too_large.status, 413, "{}", too_large.body);

    // SIGTERM stops the server cleanly.
    let mut server = server;
    let killed = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM: {}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "serve exited with {status}: {}", server.log());
    server.stderr_reader.take().unwrap().join().unwrap();
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn serve_without_an_index_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let output = finagent(home.path(), &["serve", "--addr", "127.0.0.1:0"], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("finagent index") && message.contains("meta.json missing"), "{message}");
    assert!(!message.contains("listening on"), "{message}");
}
