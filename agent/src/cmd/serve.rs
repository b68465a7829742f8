//! `finagent serve`: answer `ask` requests over HTTP with one model and one index in memory, so a
//! warm question costs one retrieval and one generation instead of a process start and a model load.
//!
//! Endpoints: `POST /ask` (`{"question": ...}` -> the JSON `finagent ask --json` prints) and
//! `GET /health`. Connections are served concurrently by tokio and hyper; model work runs on the
//! blocking pool, at most `--workers` generations at a time, all sharing one `Arc<LanguageModel>`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use agent::ask::{resolve, respond, AdapterChoice, LanguageModel};
use agent::companies::CompanyDirectory;
use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use trainer::quantize::BaseBits;
use xbrl::FactIndex;

use super::ask::{default_bits, indexed_companies};

/// Larger bodies get a 413: a question is a sentence, and the limit keeps a client from making
/// the server buffer megabytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client gets this long to send its request head, and again its body, before the
/// connection is dropped (408 for a slow body).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After Ctrl-C or SIGTERM, open requests get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: String,
    /// Index directory (default: <home>/index), opened once at start; build it with
    /// `finagent index` (serve does not fetch filings).
    #[arg(long, env = "FINAGENT_INDEX", value_name = "DIR")]
    index: Option<PathBuf>,
    /// GGUF file or Hugging Face folder (default: <home>/models/SmolLM2-135M-Instruct.Q4_1.gguf,
    /// downloaded on first use).
    #[arg(long, env = "FINAGENT_MODEL", value_name = "PATH")]
    model: Option<PathBuf>,
    /// LoRA adapter: `bundled`, a PEFT adapter directory, or `none` (as for `finagent ask`).
    #[arg(long, default_value = "bundled", value_name = "bundled|DIR|none", value_parser = parse_adapter)]
    adapter: AdapterChoice,
    /// Precision of the base weights: 32, 8 (int8) or 4 (NF4); default: 8 with the bundled
    /// adapter, else 32.
    #[arg(long, value_parser = parse_bits)]
    bits: Option<BaseBits>,
    /// Requests answered at once; more wait their turn (default: the number of cores).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

fn parse_bits(text: &str) -> std::result::Result<BaseBits, String> {
    text.parse::<BaseBits>().map_err(|error| error.to_string())
}

fn parse_adapter(text: &str) -> std::result::Result<AdapterChoice, String> {
    Ok(match text {
        "bundled" => AdapterChoice::Bundled,
        "none" => AdapterChoice::None,
        dir => AdapterChoice::Dir(PathBuf::from(dir)),
    })
}

/// Requests share the model and the index across threads; this stops compiling if either
/// stops being `Send + Sync`.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<LanguageModel>();
    shareable::<FactIndex>();
};

/// What every request shares, loaded once at start.
struct Server {
    model: Arc<LanguageModel>,
    index: FactIndex,
    companies: CompanyDirectory,
    /// One permit per `--workers`: held while a request runs the model.
    workers: Arc<Semaphore>,
    n_workers: usize,
    model_path: PathBuf,
    adapter: String,
    bits: BaseBits,
    n_facts: usize,
}

/// The `GET /health` body: what was loaded, and how busy the workers are.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    model: String,
    adapter: String,
    bits: u32,
    index: String,
    facts_indexed: usize,
    companies: Vec<String>,
    workers: usize,
    busy_workers: usize,
}

impl Server {
    fn health(&self) -> Health {
        Health {
            status: "ok",
            model: self.model_path.display().to_string(),
            adapter: self.adapter.clone(),
            bits: self.bits.bits(),
            index: self.index.dir().display().to_string(),
            facts_indexed: self.n_facts,
            companies: self.companies.iter().map(|company| company.ticker.clone()).collect(),
            workers: self.n_workers,
            busy_workers: self.n_workers.saturating_sub(self.workers.available_permits()),
        }
    }
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    let paths = Paths::resolve(home, args.index.as_deref(), args.model.as_deref());
    let n_workers = match args.workers {
        Some(0) => bail!("--workers must be at least 1, got 0"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let index = FactIndex::open(&paths.index).with_context(|| {
        format!(
            "cannot serve without a fact index: run `finagent index --out {}` first",
            paths.index.display()
        )
    })?;
    let companies = indexed_companies(&index)?;
    if companies.is_empty() {
        bail!("the fact index {} holds no filings: run `finagent index` first", paths.index.display());
    }
    let n_facts = index.num_facts()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("finagent-serve")
        .build()
        .context("cannot start the async runtime")?;
    // Bind before the model loads, so a taken port fails at once rather than after the load.
    let listener = runtime
        .block_on(TcpListener::bind(&args.addr))
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr =
        listener.local_addr().with_context(|| format!("cannot read the address bound for {}", args.addr))?;

    let bits = default_bits(&args.adapter, args.bits);
    let model_path = ensure_default_model(&paths.model)?;
    let started = Instant::now();
    let model = Arc::new(LanguageModel::load_with(&model_path, bits, &args.adapter)?);
    eprintln!(
        "loaded {} ({}-bit base, adapter {}) in {:.1} s; {n_facts} facts of {} companies from {}",
        model_path.display(),
        bits,
        args.adapter.describe(),
        started.elapsed().as_secs_f64(),
        companies.len(),
        paths.index.display()
    );
    let server = Arc::new(Server {
        model,
        index,
        companies,
        workers: Arc::new(Semaphore::new(n_workers)),
        n_workers,
        model_path,
        adapter: args.adapter.describe(),
        bits,
        n_facts,
    });
    eprintln!("listening on {addr} ({n_workers} workers)");
    runtime.block_on(accept_until_stopped(listener, server));
    // Model work already started cannot be interrupted; give it the same grace as connections.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    Ok(())
}

/// Serves each connection in its own task until Ctrl-C or SIGTERM, then stops accepting and lets
/// open connections finish their requests (at most [`SHUTDOWN_GRACE`]).
async fn accept_until_stopped(listener: TcpListener, server: Arc<Server>) {
    let (stop_sender, stop_receiver) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop_signal = std::pin::pin!(stop_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&server), stop_receiver.clone()));
                }
                Err(error) => {
                    eprintln!("cannot accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop_signal => break,
        }
    }
    drop(listener);
    eprintln!("shutting down: finishing {} open connections", connections.len());
    let _ = stop_sender.send(true);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        eprintln!(
            "shutting down: {} connections still open after {SHUTDOWN_GRACE:?}, closing them",
            connections.len()
        );
        connections.abort_all();
    }
}

/// Resolves on Ctrl-C or SIGTERM; a signal that cannot be watched is reported and ignored.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("cannot watch for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                eprintln!("cannot watch for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

async fn serve_connection(stream: TcpStream, server: Arc<Server>, mut stop: watch::Receiver<bool>) {
    let service = service_fn(move |request| handle(Arc::clone(&server), request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        eprintln!("connection closed with an error: {error}");
    }
}

/// Every request ends in a response (errors as `{"error": ...}`), logged with its latency.
async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = route(&server, request).await.unwrap_or_else(ApiError::into_response);
    eprintln!(
        "{method} {path} {} {:.0} ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(response)
}

/// One arm per endpoint. Serving `POST /tag` is one more arm shaped like `/ask`: read its JSON
/// body with [`read_json`], then run the tagger inside [`run_model`] so it shares the workers.
async fn route(server: &Arc<Server>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = request.uri().path().to_string();
    match path.as_str() {
        "/ask" => {
            require_method(&request, Method::POST)?;
            let AskRequest { question } =
                read_json(request, r#"an ask request ({"question": "..."})"#).await?;
            if question.trim().is_empty() {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "the question is empty"));
            }
            let body = run_model(server, move |server| answer(server, &question)).await?;
            Ok(json_response(StatusCode::OK, body))
        }
        "/health" => {
            require_method(&request, Method::GET)?;
            Ok(json_response(StatusCode::OK, to_json(&server.health())?))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint {path} (endpoints: POST /ask, GET /health)"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct AskRequest {
    question: String,
}

/// The JSON `finagent ask --json` prints for `question`, byte for byte.
fn answer(server: &Server, question: &str) -> Result<String, ApiError> {
    let resolved = resolve(question, &server.companies).map_err(|error| ApiError::unanswerable(&error))?;
    let mut model = || -> Result<Arc<LanguageModel>> { Ok(Arc::clone(&server.model)) };
    let response = respond(&server.index, &resolved, &mut model).map_err(|error| {
        if is_about_the_question(&error) {
            ApiError::unanswerable(&error)
        } else {
            ApiError::internal(format!("cannot answer {question:?}: {error:#}"))
        }
    })?;
    let mut json = serde_json::to_string_pretty(&response)
        .map_err(|error| ApiError::internal(format!("cannot write the answer as JSON: {error}")))?;
    json.push('\n');
    Ok(json)
}

/// Whether `respond` failed because of what was asked rather than how it ran: its own refusals
/// ("no revenue fact for AAPL in fiscal 2031 ...") are plain messages, while failures beneath it
/// (the index, the tokenizer, the model) arrive as typed library errors or carry context.
fn is_about_the_question(error: &anyhow::Error) -> bool {
    error.chain().count() == 1
        && (error.downcast_ref::<String>().is_some() || error.downcast_ref::<&'static str>().is_some())
}

/// Runs `job` on the blocking pool once a worker permit is free: generation is CPU-bound and
/// would stall the runtime's threads, and the permits keep at most `--workers` generations
/// competing for the cores.
async fn run_model<T, F>(server: &Arc<Server>, job: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Server) -> Result<T, ApiError> + Send + 'static,
{
    let permit = Arc::clone(&server.workers)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))?;
    let server = Arc::clone(server);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job(&server)
    })
    .await
    .map_err(|error| ApiError::internal(format!("the model worker failed: {error}")))?
}

fn require_method(request: &Request<Incoming>, allowed: Method) -> Result<(), ApiError> {
    if request.method() == allowed {
        return Ok(());
    }
    let message = format!("{} {} is not served; use {allowed}", request.method(), request.uri().path());
    Err(ApiError { allow: Some(allowed), ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message) })
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`]; `shape` says what was expected, for the 400.
async fn read_json<T: DeserializeOwned>(request: Request<Incoming>, shape: &str) -> Result<T, ApiError> {
    let declared_bytes = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_bytes.is_some_and(|n_bytes| n_bytes > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    let collected = tokio::time::timeout(READ_TIMEOUT, body)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {READ_TIMEOUT:?}"),
            )
        })?
        .map_err(|error| {
            if error.downcast_ref::<LengthLimitError>().is_some() {
                too_large()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {error}"))
            }
        })?;
    parse_json(&collected.to_bytes(), shape)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("request body is not {shape}: {error}"))
    })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|error| ApiError::internal(format!("cannot write JSON: {error}")))
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request that ends in an error status, answered as `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// The method to name in `Allow` (405 only).
    allow: Option<Method>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), allow: None }
    }

    /// 422: the question is well-formed but names something the index or finagent lacks.
    fn unanswerable(error: &anyhow::Error) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{error:#}"))
    }

    /// 500, also logged: the server failed, not the request.
    fn internal(message: String) -> Self {
        eprintln!("error: {message}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = json_response(self.status, body);
        if let Some(value) = self.allow.and_then(|method| HeaderValue::from_str(method.as_str()).ok()) {
            response.headers_mut().insert(ALLOW, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_refusals_are_the_questions_fault_and_library_failures_are_not() {
        let refusal = anyhow::anyhow!("no revenue fact for {} in fiscal {} in the index", "AAPL", 2031);
        assert!(is_about_the_question(&refusal));
        assert!(is_about_the_question(&anyhow::anyhow!("no fact")));
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "segment file missing");
        assert!(!is_about_the_question(&anyhow::Error::from(io)));
        let wrapped =
            anyhow::Error::from(std::io::Error::other("disk")).context("cannot search the index".to_string());
        assert!(!is_about_the_question(&wrapped));
    }

    #[test]
    fn ask_requests_need_a_question_field() {
        let shape = "an ask request";
        let parsed: AskRequest =
            parse_json(br#"{"question": "What was AAPL's 2022 revenue?"}"#, shape).unwrap();
        assert_eq!(parsed.question, "What was AAPL's 2022 revenue?");
        let missing = parse_json::<AskRequest>(br#"{"q": "x"}"#, shape).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(missing.message.contains("missing field `question`"), "{}", missing.message);
        let malformed = parse_json::<AskRequest>(b"{\"question\": ", shape).unwrap_err();
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert!(malformed.message.starts_with("request body is not an ask request"), "{}", malformed.message);
    }

    #[test]
    fn errors_are_json_with_allow_on_405() {
        let response =
            ApiError { allow: Some(Method::POST), ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "no") }
                .into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "POST");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
