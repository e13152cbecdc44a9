//! tandem's gRPC API (`tandem.v1`): the protobuf messages and the tonic client and server
//! code generated from `proto/tandem/v1/tandem.proto`. No logic lives here.
#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]
#![forbid(unsafe_code)]

/// The `tandem.v1` package.
pub mod v1 {
    tonic::include_proto!("tandem.v1");
}

/// Encoded `FileDescriptorSet` of the API, for server reflection and for checking that
/// every RPC has a permission entry.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tandem_descriptor.bin"));
