//! spool-connect: the connector runtime (source and sink connectors, workers,
//! REST API, transforms). Not built yet: the log core (spool-log) comes
//! first; this crate exists so the workspace has its final shape.
