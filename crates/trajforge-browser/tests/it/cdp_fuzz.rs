//! Fuzzing the DevTools message stream (`TRAJFORGE_FUZZ_CASES` sets the budget): hostile
//! NUL-separated messages from the "browser" while a call waits. The reader never panics
//! (it would die silently in its task: it must reach the end and mark the connection
//! closed), and the waiting call ends with a result or a typed error.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use trajforge_browser::cdp::Cdp;
use trajforge_testkit::fuzz;

const SEEDS: &[&str] = &[
    "{\"id\":1,\"result\":{\"frameTree\":{\"frame\":{\"id\":\"F\"}}}}\0{\"method\":\"Page.loadEventFired\",\"sessionId\":\"s\",\"params\":{\"timestamp\":1.5}}\0",
    "{\"id\":1,\"error\":{\"code\":-32000,\"message\":\"No node\"}}\0{\"id\":18446744073709551615}\0{\"method\":7}\0",
    "{\"method\":\"Fetch.requestPaused\",\"sessionId\":\"s\",\"params\":{\"requestId\":\"r\",\"request\":{\"url\":\"http://x\"}}}\0\0\0{\"id\":1}\0",
];

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn hostile_devtools_messages_never_panic(bytes in fuzz::inputs(
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect(), 1024)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (browser_side, ours) = tokio::io::duplex(1 << 16);
            let (our_read, our_write) = tokio::io::split(ours);
            let cdp = Cdp::start(our_read, our_write, Duration::from_millis(50));
            let mut events = cdp.subscribe("s");
            let call = {
                let cdp = cdp.clone();
                tokio::spawn(async move { cdp.call(Some("s"), "Page.getFrameTree", json!({})).await })
            };
            let (_browser_read, mut browser_write) = tokio::io::split(browser_side);
            let _ = browser_write.write_all(&bytes).await;
            let _ = browser_write.shutdown().await;
            let outcome = call.await;
            prop_assert!(outcome.is_ok(), "the call's task panicked");
            let until = tokio::time::Instant::now() + Duration::from_secs(2);
            while !cdp.is_closed() && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            prop_assert!(cdp.is_closed(), "the reader did not reach the end of the stream");
            while events.try_recv().is_ok() {}
            Ok(())
        })?;
    }
}
