//! `tarn serve` (SPEC §9) and `tarn token create|ls|revoke`.

use crate::Ctx;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::sync::Arc;
use std::time::Duration;
use tarn_server::{CatalogQueue, NatsQueue, RequestQueue, Scope, Server, ServerConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one. The first line printed is
    /// `listening on http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Let requests without a token read (never write).
    #[arg(long)]
    pub allow_anonymous_read: bool,
    /// The largest write body, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,
    /// The largest JSON body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_json_bytes: usize,
    /// The memory one SQL query may hold, in bytes; a query that needs more fails (422).
    #[arg(long, default_value_t = 1 << 30)]
    pub query_memory: usize,
    /// How long one SQL query may run (e.g. 30s, 5m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,
    /// Where queued mutations wait: `catalog` (the lake's own catalog) or a NATS JetStream
    /// server, `nats://HOST:PORT[/NAMESPACE]` (one namespace per lake; default `tarn`).
    #[arg(long, default_value = "catalog")]
    pub queue: String,
}

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    let lake = ctx.lake().await?;
    let config = ServerConfig {
        allow_anonymous_read: args.allow_anonymous_read,
        max_upload_bytes: args.max_upload_bytes,
        max_json_bytes: args.max_json_bytes,
        query_memory_bytes: args.query_memory,
        query_timeout: args.query_timeout,
    };
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    let queue: Arc<dyn RequestQueue> = if args.queue == "catalog" {
        Arc::new(CatalogQueue::new(&lake))
    } else if args.queue.starts_with("nats://") {
        Arc::new(NatsQueue::connect(&args.queue, &lake.describe()).await?)
    } else {
        bail!(
            "--queue {}: use `catalog` or nats://HOST:PORT[/NAMESPACE]",
            args.queue
        );
    };
    let server = Server::start(lake, config, queue).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")?;
        out.flush()?;
    }
    tracing::info!(%local, "serving");
    let shutdown = server.shutdown_signal();
    let app = tarn_server::app(server.state.clone());
    let stop = async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing the requests in hand");
        // Event streams and waits end; requests being answered finish.
        shutdown.stop();
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .context("the server failed")?;
    server.stop().await;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once and stored only as a hash.
    Create {
        name: String,
        /// read:PREFIX or write:PREFIX (write implies read; `read:` is the whole lake).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List tokens (names, ids and scopes; never secrets).
    Ls,
    /// Revoke a token by name.
    Revoke { name: String },
}

pub async fn token(ctx: &Ctx, command: TokenCommand) -> Result<()> {
    let lake = ctx.lake().await?;
    let store = lake.service_store();
    match command {
        TokenCommand::Create { name, scopes } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let (secret, record) =
                tarn_server::new_token(&name, &scopes).map_err(anyhow::Error::msg)?;
            store
                .create_token(&record)
                .await
                .map_err(tarn::Error::from)?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({"name": name, "token": secret}));
            }
            outln!("{secret}");
            eprintln!("token {name:?} created; its secret is shown only this once");
        }
        TokenCommand::Ls => {
            let tokens = store.tokens().await.map_err(tarn::Error::from)?;
            if ctx.json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({"name": t.name, "id": t.id, "scopes": t.scopes,
                            "created": t.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
                    })
                    .collect();
                return ctx.print_json(&list);
            }
            let mut table = crate::output::table(&["name", "id", "scopes", "created"]);
            for t in &tokens {
                table.add_row([
                    t.name.clone(),
                    t.id.clone(),
                    t.scopes.join(" "),
                    t.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ]);
            }
            outln!("{table}");
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name).await.map_err(tarn::Error::from)? {
                bail!("no token named {name:?} (tarn token ls lists them)");
            }
            if ctx.json {
                return ctx.print_json(&serde_json::json!({"revoked": name}));
            }
            outln!("revoked token {name:?}");
        }
    }
    Ok(())
}
