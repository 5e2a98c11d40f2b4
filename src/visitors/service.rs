//! visitors use cases.
