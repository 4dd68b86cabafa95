//! The HTTP side: routes, request verification, error responses, graceful shutdown.
