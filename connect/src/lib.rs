//! spool-connect: the connector runtime (source and sink connectors, workers,
//! REST API, transforms). Not built yet; it will
//! be built on spool-client (and run embedded through spool-broker's
//! `Node`), and exists so the workspace has its final shape.
