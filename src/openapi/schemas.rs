//! Schemas that serde types name with `#[schema(schema_with = ...)]`.
//! This file imports nothing of My-Chat, so the lowest modules (ids,
//! models) can use it.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// The schema of every typed id: a UUID (v7) as a string.
pub fn uuid_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

/// A visitor's custom attributes (`visitors::attributes`): a small map of
/// strings, numbers and booleans.
pub fn attributes_schema() -> Schema {
    use utoipa::openapi::schema::{AdditionalProperties, OneOfBuilder};
    let value = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .into()
}
