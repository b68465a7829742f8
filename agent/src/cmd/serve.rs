//! `finagent serve`: answer `ask` and `tag` requests over HTTP with one model and one index in
//! memory, so a warm question costs one retrieval and one generation instead of a process start
//! and a model load.
//!
//! Endpoints: `POST /ask` (`{"question": ...}` -> the JSON `finagent ask --json` prints),
//! `POST /tag` (`{"text": ...}` -> a proposed us-gaap tag per number, as `finagent tag` proposes
//! them) and `GET /health`. Connections are served concurrently by tokio and hyper; model work
//! runs on the blocking pool, at most `--workers` jobs at a time, all sharing one
//! `Arc<LanguageModel>`.

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

use agent::ask::{latest_fiscal_year, resolve_each, respond, respond_each, AdapterChoice, LanguageModel};
use agent::companies::{Company, CompanyDirectory};
use agent::config::Paths;
use agent::model_fetch::ensure_default_model;
use agent::tag::candidates::TagSet;
use agent::tag::document::text_mentions;
use agent::tag::scorer::ModelScorer;
use agent::tag::setup::{
    default_catalogue_path, default_examples_path, default_tag_set, full_taxonomy_tag_set, inline_filings,
    load_catalogue, Examples,
};
use agent::tag::taggable::Taggability;
use agent::tag::{Proposal, TaggedMention, Tagger, TaggerConfig};
use datasets::DataDir;
use trainer::quantize::BaseBits;
use xbrl::FactIndex;

use super::ask::{default_bits, indexed_companies, parse_adapter, parse_bits};

/// Larger bodies get a 413: a question is a sentence, a text to tag a few paragraphs, and the
/// limit keeps a client from making the server buffer megabytes.
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
    /// How an 8-bit base multiplies: `dequantized` (f32 activations times the int8 weight) or
    /// `llm-int8` (bitsandbytes' int8 activations with outliers in f32; about twice the prompt
    /// speed with AVX-512 VNNI). The bundled adapter was trained over `dequantized` and answers
    /// less accurately with `llm-int8` (docs/agent.md, "Latency").
    #[arg(long, value_enum, default_value = "dequantized")]
    int8_matmul: super::Int8MatmulArg,
    /// Requests answered at once; more wait their turn (default: the number of cores).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Tagged examples ({text, entity, label} JSON lines) that teach `POST /tag`'s ranking
    /// (default: finer/train.jsonl of $FINAGENT_DATA or $FINAGENT_SHARED/data, when present).
    #[arg(long, value_name = "FILE")]
    tag_examples: Option<PathBuf>,
    /// An inline XBRL filing, or a folder of them, whose own us-gaap tags also teach `POST /tag`'s
    /// ranking, as `finagent tag --learn-from` (repeatable).
    #[arg(long, value_name = "FILING", action = clap::ArgAction::Append)]
    tag_learn_from: Vec<PathBuf>,
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
    /// The tag sets of `POST /tag`, or why there are none (the data folder lacks the FiNER-139
    /// list): `/ask` does not need them, so their absence does not stop the server.
    tagging: std::result::Result<Tagging, String>,
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
    tagging: TaggingHealth,
}

/// What `POST /tag` proposes from.
#[derive(Debug, Serialize)]
struct TaggingHealth {
    available: bool,
    /// Tags of the default (FiNER-139) set.
    tags: usize,
    /// Tags `full_taxonomy` proposes from; absent without the us-gaap concept table.
    full_taxonomy_tags: Option<usize>,
    /// The tagged examples the ranking learned from, and how many of their rows it used.
    examples: Option<String>,
    examples_learned: usize,
    /// The inline filings (`--tag-learn-from`) it also learned from, with the examples used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    learned_from_filings: Vec<FilingHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct FilingHealth {
    filing: String,
    examples_learned: usize,
}

/// The tag sets `POST /tag` ranks with, built once at start like `finagent tag` builds its own.
struct Tagging {
    /// FiNER-139's tags, labelled from the concept table when there is one.
    finer: TagSet,
    /// Every numeric us-gaap concept; `None` without the concept table.
    full_taxonomy: Option<TagSet>,
    /// Where the concept table was looked for, to name it when `full_taxonomy` cannot be served.
    catalogue_path: PathBuf,
    examples: Option<PathBuf>,
    n_examples_learned: usize,
    /// The `--tag-learn-from` filings and how many of each one's tagged numbers were used.
    filings: Vec<(PathBuf, usize)>,
    /// Whether a number would be tagged at all, from those filings' tagged and untagged numbers.
    taggability: Option<Taggability>,
}

impl Tagging {
    /// The FiNER-139 set (and the full-taxonomy one, when the data folder has the concept table),
    /// both taught by `examples`, else by the data folder's FiNER train split when it has one,
    /// and by the tagged numbers of `filings`.
    fn load(data: &DataDir, examples: Option<&Path>, filings: &[PathBuf]) -> Result<Tagging> {
        let catalogue = load_catalogue(None, data)?;
        let mut finer = default_tag_set(None, data, catalogue.as_ref())?;
        let mut full_taxonomy = catalogue.as_ref().map(full_taxonomy_tag_set).transpose()?;
        let examples = examples.map(Path::to_path_buf).or_else(|| default_examples_path(data));
        let filings = inline_filings(filings)?;
        let sources = Examples::read(examples.as_deref(), &filings)?;
        let used = sources.teach(&mut finer);
        if let Some(tags) = &mut full_taxonomy {
            sources.teach(tags);
        }
        let (n_examples_learned, filing_used) = match examples {
            Some(_) => (used[0], &used[1..]),
            None => (0, &used[..]),
        };
        Ok(Tagging {
            finer,
            full_taxonomy,
            catalogue_path: default_catalogue_path(data),
            examples,
            n_examples_learned,
            filings: filings.into_iter().zip(filing_used.iter().copied()).collect(),
            taggability: sources.taggability(),
        })
    }

    fn health(tagging: &std::result::Result<Tagging, String>) -> TaggingHealth {
        match tagging {
            Ok(tagging) => TaggingHealth {
                available: true,
                tags: tagging.finer.len(),
                full_taxonomy_tags: tagging.full_taxonomy.as_ref().map(TagSet::len),
                examples: tagging.examples.as_ref().map(|path| path.display().to_string()),
                examples_learned: tagging.n_examples_learned,
                learned_from_filings: tagging
                    .filings
                    .iter()
                    .map(|(path, n_used)| FilingHealth {
                        filing: path.display().to_string(),
                        examples_learned: *n_used,
                    })
                    .collect(),
                error: None,
            },
            Err(reason) => TaggingHealth {
                available: false,
                tags: 0,
                full_taxonomy_tags: None,
                examples: None,
                examples_learned: 0,
                learned_from_filings: Vec::new(),
                error: Some(reason.clone()),
            },
        }
    }
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
            tagging: Tagging::health(&self.tagging),
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
    let tagging = load_tagging(args.tag_examples.as_deref(), &args.tag_learn_from)?;

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
    let model =
        Arc::new(LanguageModel::load_with(&model_path, bits, args.int8_matmul.into(), &args.adapter)?);
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
        tagging,
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

/// The tag sets for `POST /tag`. A data folder without the FiNER-139 list leaves `/tag` answering
/// 503 with the reason; examples named by `--tag-examples` or `--tag-learn-from` that cannot be
/// read stop the start.
fn load_tagging(
    examples: Option<&Path>,
    filings: &[PathBuf],
) -> Result<std::result::Result<Tagging, String>> {
    let data = DataDir::from_env();
    let started = Instant::now();
    match Tagging::load(&data, examples, filings) {
        Ok(tagging) => {
            let mut sources: Vec<String> = tagging
                .examples
                .iter()
                .map(|path| format!("{} tagged examples in {}", tagging.n_examples_learned, path.display()))
                .collect();
            sources.extend(
                tagging
                    .filings
                    .iter()
                    .map(|(path, n_used)| format!("{n_used} tagged examples in {}", path.display())),
            );
            let learned = if sources.is_empty() {
                "no tagged examples to learn from".to_string()
            } else {
                format!("learned from {}", sources.join(", "))
            };
            eprintln!(
                "tag sets: {} FiNER-139 tags, {} for full_taxonomy; {learned} ({:.1} s)",
                tagging.finer.len(),
                tagging.full_taxonomy.as_ref().map_or("none".to_string(), |tags| tags.len().to_string()),
                started.elapsed().as_secs_f64()
            );
            Ok(Ok(tagging))
        }
        Err(error) if examples.is_some() || !filings.is_empty() => {
            Err(error.context("cannot build the tag sets for POST /tag"))
        }
        Err(error) => {
            eprintln!("POST /tag is unavailable: {error:#}");
            Ok(Err(format!("{error:#}")))
        }
    }
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

/// One arm per endpoint: read the JSON body with [`read_json`], check it, then do the work inside
/// [`run_model`] so that every endpoint shares the workers.
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
        "/tag" => {
            require_method(&request, Method::POST)?;
            let tag_request: TagRequest = read_json(
                request,
                r#"a tag request ({"text": "...", "full_taxonomy": false, "use_model": false})"#,
            )
            .await?;
            check_tag_request(&server.tagging, &tag_request)?;
            let body = run_model(server, move |server| tag_text(server, &tag_request)).await?;
            Ok(json_response(StatusCode::OK, body))
        }
        "/health" => {
            require_method(&request, Method::GET)?;
            Ok(json_response(StatusCode::OK, to_json(&server.health())?))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint {path} (endpoints: POST /ask, POST /tag, GET /health)"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct AskRequest {
    question: String,
}

/// A `POST /tag` body. Unknown fields are refused, so a misspelt option is not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    /// Plain text, or an HTML fragment (read as HTML when it has tags).
    text: String,
    /// Propose from every numeric us-gaap concept instead of FiNER-139's tags.
    #[serde(default)]
    full_taxonomy: bool,
    /// Re-score the ranking's shortlist with the served model.
    #[serde(default)]
    use_model: bool,
}

/// The `POST /tag` body.
#[derive(Debug, Serialize)]
struct TagResponse<'a> {
    mentions: Vec<TaggedMention<'a>>,
    /// Why `mentions` is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

const NO_MENTIONS_NOTE: &str = "no numbers found to tag: only numbers in sentences of at least 4 words \
     are tagged, and years, dates, note numbers and form names are not";

/// The 400, 422 and 503 a tag request gets before it waits for a worker.
fn check_tag_request(
    tagging: &std::result::Result<Tagging, String>,
    request: &TagRequest,
) -> Result<(), ApiError> {
    if request.text.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the text is empty"));
    }
    let tagging = tagging.as_ref().map_err(|reason| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("tagging is unavailable on this server: {reason}"),
        )
    })?;
    if request.full_taxonomy && tagging.full_taxonomy.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "full_taxonomy needs the us-gaap concept table, which this server does not have (looked for {}); \
                 leave full_taxonomy out to propose from FiNER-139's tags",
                tagging.catalogue_path.display()
            ),
        ));
    }
    Ok(())
}

/// A proposed tag for every number in `request.text`, as `finagent tag` proposes them (its
/// default candidates and model weight), the model being the served one when `use_model` is set.
fn tag_text(server: &Server, request: &TagRequest) -> Result<String, ApiError> {
    let tagging = server
        .tagging
        .as_ref()
        .map_err(|reason| ApiError::internal(format!("tagging is unavailable: {reason}")))?;
    let tags = match (&tagging.full_taxonomy, request.full_taxonomy) {
        (Some(full_taxonomy), true) => full_taxonomy,
        (None, true) => return Err(ApiError::internal("the full-taxonomy tag set is missing".to_string())),
        (_, false) => &tagging.finer,
    };
    let model = &server.model;
    let tagger = Tagger {
        tags,
        model: request.use_model.then(|| ModelScorer::new(&model.model, &model.tokenizer)),
        config: TaggerConfig::default(),
    };
    let (_kind, found) = text_mentions(&request.text);
    let proposals: Vec<Proposal> = found
        .iter()
        .map(|found| tagger.propose(&found.sentence, &found.mention))
        .collect::<Result<_>>()
        .map_err(|error| ApiError::internal(format!("cannot tag the text: {error:#}")))?;
    let mentions: Vec<TaggedMention> = found
        .iter()
        .zip(&proposals)
        .map(|(found, proposal)| {
            let mut line = TaggedMention::new(&found.sentence, &found.mention, proposal, None);
            line.taggable =
                tagging.taggability.as_ref().map(|model| model.probability(&found.sentence, &found.mention));
            line
        })
        .collect();
    let note = mentions.is_empty().then_some(NO_MENTIONS_NOTE);
    to_json(&TagResponse { mentions, note })
}

/// The JSON `finagent ask --json` prints for `question`, byte for byte.
fn answer(server: &Server, question: &str) -> Result<String, ApiError> {
    let latest = |company: &Company| latest_fiscal_year(&server.index, &company.ticker);
    let resolved =
        resolve_each(question, &server.companies, &latest).map_err(|error| ApiError::unanswerable(&error))?;
    let mut model = || -> Result<Arc<LanguageModel>> { Ok(Arc::clone(&server.model)) };
    let failed = |error: anyhow::Error| {
        if is_about_the_question(&error) {
            ApiError::unanswerable(&error)
        } else {
            ApiError::internal(format!("cannot answer {question:?}: {error:#}"))
        }
    };
    let json = match resolved.as_slice() {
        [one] => serde_json::to_string_pretty(&respond(&server.index, one, &mut model).map_err(failed)?),
        // A comparison: one element per company named, a refusal standing in for an answer the
        // question's own terms rule out, as `finagent ask --json` prints it.
        several => serde_json::to_string_pretty(
            &respond_each(&server.index, several, &mut model, is_about_the_question).map_err(failed)?,
        ),
    };
    let mut json =
        json.map_err(|error| ApiError::internal(format!("cannot write the answer as JSON: {error}")))?;
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
        // On a rayon worker, as `main` runs the other commands: a product's parallel loop
        // started from outside the pool waits on a worker at every one of its ~200 calls a
        // token, and the calling thread does none of the work (warm asks took 1.5x as long).
        rayon::scope(|_| job(&server))
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
    fn tagging_learns_from_filings_and_reports_them_in_health() {
        let dir = tempfile::tempdir().expect("temp dir");
        let finer = dir.path().join("finer");
        std::fs::create_dir_all(&finer).expect("mkdir");
        std::fs::write(finer.join("tag_set.txt"), "DebtInstrumentInterestRateStatedPercentage\nRevenues\n")
            .expect("write");
        let filings = dir.path().join("filings");
        std::fs::create_dir_all(&filings).expect("mkdir");
        std::fs::write(
            filings.join("x-20231231.htm"),
            r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body>
<p>The notes bear interest at <ix:nonFraction name="us-gaap:DebtInstrumentInterestRateStatedPercentage" contextRef="c" scale="-2">2.5</ix:nonFraction>% per year.</p></body></html>"#,
        )
        .expect("write");
        let data = DataDir::new(dir.path());
        let tagging = Tagging::load(&data, None, std::slice::from_ref(&filings)).expect("tag sets");
        assert_eq!(tagging.filings, [(filings.join("x-20231231.htm"), 1)]);
        assert!(tagging.taggability.is_none(), "every number of the filing is tagged: nothing to tell apart");
        let health = serde_json::to_value(Tagging::health(&Ok(tagging))).expect("json");
        assert_eq!(health["learned_from_filings"][0]["examples_learned"], 1, "{health}");
        assert_eq!(health["examples_learned"], 0, "{health}");

        let error = Tagging::load(&data, None, &[dir.path().join("finer")]).err().expect("no inline filing");
        assert!(format!("{error:#}").contains("finer"), "{error:#}");
    }

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
    fn tag_requests_need_text_and_refuse_unknown_options() {
        let shape = "a tag request";
        let parsed: TagRequest = parse_json(br#"{"text": "Sales were $ 5 million ."}"#, shape).unwrap();
        assert!(!parsed.full_taxonomy && !parsed.use_model);
        let parsed: TagRequest =
            parse_json(br#"{"text": "x", "full_taxonomy": true, "use_model": true}"#, shape).unwrap();
        assert!(parsed.full_taxonomy && parsed.use_model);
        let missing = parse_json::<TagRequest>(br#"{"question": "x"}"#, shape).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(missing.message.contains("unknown field `question`"), "{}", missing.message);
        let missing = parse_json::<TagRequest>(br#"{}"#, shape).unwrap_err();
        assert!(missing.message.contains("missing field `text`"), "{}", missing.message);
        let misspelt = parse_json::<TagRequest>(br#"{"text": "x", "use_modle": true}"#, shape).unwrap_err();
        assert_eq!(misspelt.status, StatusCode::BAD_REQUEST);
        assert!(misspelt.message.contains("use_modle"), "{}", misspelt.message);
    }

    #[test]
    fn tag_requests_are_checked_before_they_wait_for_a_worker() {
        let request = |text: &str, full_taxonomy: bool| TagRequest {
            text: text.to_string(),
            full_taxonomy,
            use_model: false,
        };
        let tagging = Ok(Tagging {
            finer: TagSet::new(&["Revenues".to_string()], None),
            full_taxonomy: None,
            catalogue_path: PathBuf::from("/data/../xbrl/taxonomy/us-gaap_concepts_partial.tsv"),
            examples: None,
            n_examples_learned: 0,
            filings: Vec::new(),
            taggability: None,
        });
        assert!(check_tag_request(&tagging, &request("Sales were $ 5 million .", false)).is_ok());
        let empty = check_tag_request(&tagging, &request(" \n", false)).unwrap_err();
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        let full = check_tag_request(&tagging, &request("Sales were $ 5 million .", true)).unwrap_err();
        assert_eq!(full.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(full.message.contains("us-gaap_concepts_partial.tsv"), "{}", full.message);
        let unavailable = Err("cannot read the FiNER-139 tag list".to_string());
        let refused =
            check_tag_request(&unavailable, &request("Sales were $ 5 million .", false)).unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("FiNER-139 tag list"), "{}", refused.message);
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
