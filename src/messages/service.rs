//! messages use cases.
