//! templates use cases.
