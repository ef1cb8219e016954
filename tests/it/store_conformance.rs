//! The store conformance suite (`src/store/conformance.rs`) against the
//! real server, as the in-memory store passes it in the unit tests: the
//! two behave alike where the stages rely on them.

use mediashift::testing::{ConnectionSettings, S3, suite};

use crate::support::{runtime, server, target};

#[test]
fn the_real_server_passes_the_store_conformance_suite() {
    let t = target("conformance");
    let s = server();
    let conn = ConnectionSettings {
        endpoint_url: Some(s.endpoint.clone()),
        region: Some(s.region.clone()),
        test_keys: Some((s.access_key.clone(), s.secret_key.clone())),
        ..ConnectionSettings::default()
    };
    runtime().block_on(async {
        let store = S3::connect(&conn, &t.bucket).await.expect("connect");
        if let Err(why) = suite(&store, &t.prefix, true).await {
            panic!(
                "the server at {} fails the conformance suite: {why}",
                s.endpoint
            );
        }
    });
}
