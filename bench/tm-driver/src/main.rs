//! `tm-driver SRC_DIR s3://BUCKET/PREFIX/`: uploads a directory with the AWS
//! transfer manager's `upload_objects` at its default settings, the
//! endpoint and credentials from the environment (AWS_ENDPOINT_URL and the
//! rest of the standard chain), and prints one JSON line: objects and
//! bytes uploaded, and the transfer manager's version.

use std::process::ExitCode;

use aws_sdk_s3_transfer_manager::io::walk::FsWalker;

const VERSION: &str = "aws-sdk-s3-transfer-manager 0.3.1";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--version") {
        println!("{VERSION}");
        return ExitCode::SUCCESS;
    }
    let [src, dest] = args.as_slice() else {
        eprintln!("usage: tm-driver SRC_DIR s3://BUCKET/PREFIX/");
        return ExitCode::from(2);
    };
    let Some((bucket, prefix)) = dest
        .strip_prefix("s3://")
        .map(|rest| rest.split_once('/').unwrap_or((rest, "")))
    else {
        eprintln!("tm-driver: the destination must be s3://BUCKET/PREFIX/, not {dest}");
        return ExitCode::from(2);
    };
    let config = aws_sdk_s3_transfer_manager::from_env().load().await;
    let tm = aws_sdk_s3_transfer_manager::Client::new(config);
    let handle = match tm
        .upload_objects()
        .source(src)
        .bucket(bucket)
        .key_prefix(prefix)
        .walker(FsWalker::builder().recursive(true).build())
        .initiate()
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("tm-driver: {e}");
            return ExitCode::FAILURE;
        }
    };
    match handle.join().await {
        Ok(out) => {
            println!(
                "{{\"tool\": \"{VERSION}\", \"objects_uploaded\": {}, \"objects_failed\": {}, \"network_tx\": {}}}",
                out.objects_uploaded(),
                out.failed_transfers().len(),
                out.metrics().network_tx
            );
            if !out.failed_transfers().is_empty() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tm-driver: {e:?}");
            ExitCode::FAILURE
        }
    }
}
