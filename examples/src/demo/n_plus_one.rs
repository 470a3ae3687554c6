//! Incident 2, an N+1 page: `/api/dashboard` loads 50 posts with one query, then
//! `enrich_posts` loads the comments of each post with one query per post (1 + 50). otel-sql
//! feeds every query to otel-core's repeated-shape detector, which flags the request span
//! (`n_plus_one.*` attributes, a `n_plus_one.detected` event, a warning log line) with the
//! fix. The batched page loads the same comments with one `IN (...)` query and is not
//! flagged.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::n_plus_one::replay(shop, out).await
//! # }
//! ```

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use otel_core::attributes;
use otel_sql::TracedPool;
use sqlx::{QueryBuilder, Sqlite};

use super::database::POSTS;
use super::output::SeenSpan;
use super::shop::{Gateway, Shop};
use super::{DemoError, HandlerError, Output, ms};

/// The gateway routes of this incident: `GET /api/dashboard` (N+1) and
/// `GET /api/dashboard/batched` (one query for all comments).
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/api/dashboard", get(dashboard))
        .route("/api/dashboard/batched", get(dashboard_batched))
}

/// Replays both pages and says which one was flagged.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        2,
        "An N+1 page: /api/dashboard runs one comments query per post",
    );
    out.line("--- GET /api/dashboard (enrich_posts: one query per post):");
    let started = Instant::now();
    let page = shop.user.get(shop.url("/api/dashboard")).send().await?;
    let slow_ms = ms(started.elapsed());
    let slow_body = page.text().await?;
    out.settle().await;
    let slow_spans = out.take_spans();

    out.line("--- GET /api/dashboard/batched (enrich_posts_batched: one IN (...) query):");
    let started = Instant::now();
    let page = shop
        .user
        .get(shop.url("/api/dashboard/batched"))
        .send()
        .await?;
    let fast_ms = ms(started.elapsed());
    let fast_body = page.text().await?;
    out.settle().await;
    let fast_spans = out.take_spans();

    out.line("\nWhat happened:");
    out.line(&format!(
        "  N+1 page: GET /api/dashboard took {slow_ms} ms: {slow_body}"
    ));
    match finding(&slow_spans, "GET /api/dashboard") {
        Some(f) => out.line(&format!(
            "  flagged n_plus_one: `{}` ran {} times from {}\n  fix: {}",
            f.attr(attributes::N_PLUS_ONE_SHAPE).unwrap_or("?"),
            f.attr(attributes::N_PLUS_ONE_COUNT).unwrap_or("?"),
            f.attr(attributes::N_PLUS_ONE_CALL_SITE).unwrap_or("?"),
            f.attr(attributes::N_PLUS_ONE_SUGGESTION).unwrap_or("?"),
        )),
        None if out.is_console() => out.line("  (no n_plus_one finding was recorded)"),
        None => out.line("  the finding is on the server span (n_plus_one.*) in your backend"),
    }
    out.line(&format!(
        "  batched page: GET /api/dashboard/batched took {fast_ms} ms: {fast_body}"
    ));
    match finding(&fast_spans, "GET /api/dashboard/batched") {
        Some(_) => out.line("  the batched page was flagged too (unexpected)"),
        None => out.line("  batched page: no n_plus_one finding"),
    }
    Ok(())
}

async fn dashboard(State(gw): State<Gateway>) -> Result<String, HandlerError> {
    let (result, queries) = otel_sql::count_queries(async {
        let posts = load_posts(&gw.db).await?;
        let comments = enrich_posts(&gw.db, &posts).await?;
        Ok::<_, sqlx::Error>((posts.len(), comments))
    })
    .await;
    let (posts, comments) = result?;
    Ok(format!(
        "{posts} posts, {comments} comments, {queries} queries"
    ))
}

async fn dashboard_batched(State(gw): State<Gateway>) -> Result<String, HandlerError> {
    let (result, queries) = otel_sql::count_queries(async {
        let posts = load_posts(&gw.db).await?;
        let comments = enrich_posts_batched(&gw.db, &posts).await?;
        Ok::<_, sqlx::Error>((posts.len(), comments))
    })
    .await;
    let (posts, comments) = result?;
    Ok(format!(
        "{posts} posts, {comments} comments, {queries} queries"
    ))
}

async fn load_posts(db: &TracedPool<Sqlite>) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, title FROM posts ORDER BY id LIMIT ?")
        .bind(POSTS as i64)
        .fetch_all(db)
        .await
}

/// The N+1: one query per post.
#[tracing::instrument(skip_all, fields(posts = posts.len()))]
async fn enrich_posts(
    db: &TracedPool<Sqlite>,
    posts: &[(i64, String)],
) -> Result<usize, sqlx::Error> {
    let mut comments = 0;
    for (post_id, _title) in posts {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT body FROM comments WHERE post_id = ?")
            .bind(post_id)
            .fetch_all(db)
            .await?;
        comments += rows.len();
    }
    Ok(comments)
}

/// The fix: one `IN (...)` query for all posts, built with `QueryBuilder`.
#[tracing::instrument(skip_all, fields(posts = posts.len()))]
async fn enrich_posts_batched(
    db: &TracedPool<Sqlite>,
    posts: &[(i64, String)],
) -> Result<usize, sqlx::Error> {
    if posts.is_empty() {
        return Ok(0);
    }
    let mut query =
        QueryBuilder::<Sqlite>::new("SELECT post_id, body FROM comments WHERE post_id IN (");
    let mut ids = query.separated(", ");
    for (post_id, _title) in posts {
        ids.push_bind(*post_id);
    }
    query.push(")");
    let rows: Vec<(i64, String)> = query.build_query_as().fetch_all(db).await?;
    Ok(rows.len())
}

/// The request span named `server_span` when it carries an N+1 finding.
fn finding<'a>(spans: &'a [SeenSpan], server_span: &str) -> Option<&'a SeenSpan> {
    spans.iter().find(|span| {
        span.name == server_span && span.attr(attributes::N_PLUS_ONE_KIND) == Some("n_plus_one")
    })
}
