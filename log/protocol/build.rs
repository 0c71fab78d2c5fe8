//! Generates the gRPC protocol types from proto/spool.proto with a protoc
//! that ships inside a crate, so building needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/spool.proto");
    tonic_build::configure()
        .bytes(["."])
        .compile_protos(&["proto/spool.proto"], &["proto"])?;
    Ok(())
}
