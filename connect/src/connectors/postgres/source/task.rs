//! The source task: one session, the tables its connector gave it (or the
//! query), and polls that each query the table that is due soonest, so a
//! table with a backlog is read on at once while the others still get
//! their turns.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_postgres::Client;

use super::super::connection;
use super::config::{Source, SourceSettings};
use super::failed;
use super::table::Querier;
use crate::api::{ConfigMap, SourceRecord, SourceTask, SourceTaskContext};
use crate::{ConnectError, Result};

/// The longest a poll waits for a table to fall due: the worker stops
/// and pauses a task only between polls, and wants them back within
/// about a second.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// The session's settings: dates (read as text) in ISO form, whatever
/// the server's or the user's default DateStyle.
const SESSION_SETUP: &str = "SET DateStyle = 'ISO, YMD'";

/// The PostgreSQL source's task (see the module's comment of `source`).
#[derive(Default)]
pub struct PostgresSourceTask {
    /// `None` until started, and again once stopped.
    running: Option<Running>,
}

struct Running {
    settings: SourceSettings,
    client: Client,
    tables: Vec<Querier>,
}

impl PostgresSourceTask {
    async fn begin(&mut self, config: ConfigMap, context: SourceTaskContext) -> Result<()> {
        let settings = SourceSettings::for_task(&config)?;
        let client = connection::connect(&settings.connection, context.connector(), context.task())
            .await
            .map_err(|e| failed("connecting to the database", e))?;
        client
            .batch_execute(SESSION_SETUP)
            .await
            .map_err(|e| failed("setting up the session", e))?;
        let mut tables = Vec::new();
        match &settings.source {
            Source::Tables(names) => {
                for name in names {
                    let table = Querier::open(&client, Some(name), &settings, context.offsets());
                    tables.push(table.await?);
                }
            }
            Source::Query(_) => {
                let query = Querier::open(&client, None, &settings, context.offsets());
                tables.push(query.await?);
            }
        }
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        tracing::info!(
            connector = %context.connector(),
            task = context.task(),
            tables = ?names,
            "PostgreSQL source task started"
        );
        self.running = Some(Running {
            settings,
            client,
            tables,
        });
        Ok(())
    }

    /// The records of the table due soonest, once it is due; none if no
    /// table falls due within [`IDLE_WAIT`].
    async fn next(&mut self) -> Result<Vec<SourceRecord>> {
        let running = self.running.as_mut().ok_or_else(|| {
            ConnectError::Task("the PostgreSQL source task is not started".into())
        })?;
        let soonest = running
            .tables
            .iter()
            .enumerate()
            .min_by_key(|(_, table)| table.due)
            .map(|(index, table)| (index, table.due));
        let Some((index, due)) = soonest else {
            tokio::time::sleep(IDLE_WAIT).await;
            return Ok(Vec::new());
        };
        let now = Instant::now();
        if due > now {
            tokio::time::sleep((due - now).min(IDLE_WAIT)).await;
            if Instant::now() < due {
                return Ok(Vec::new());
            }
        }
        let Running {
            settings,
            client,
            tables,
        } = running;
        tables[index].poll(client, settings).await
    }
}

impl SourceTask for PostgresSourceTask {
    fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.begin(config, context))
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(self.next())
    }

    /// Closes the session. Rows read but not committed are read again by
    /// the next task, from the committed offsets.
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.running = None;
        crate::api::done()
    }
}
