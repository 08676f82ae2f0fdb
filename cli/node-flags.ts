/**
 * V8 options a node runs with. A larger young generation: with the default
 * (16 MB semi-spaces) the articles in flight between their arrival and their
 * COMMIT (a few thousand with several feeding peers) outlived scavenges and
 * were promoted, and collection took a quarter of the main thread; with 32 MB,
 * ingest of 1 KB articles on four connections went from 24-28k to 32-35k
 * articles/s here, and CPU per article from 55 to 42 µs (bench/RESULTS-*.md).
 *
 * No memory reducer: V8 shrinks the heap once allocation slows down for a
 * few seconds, and a relay's traffic comes in bursts. The next burst then
 * grows the heap back with collections all the way. In the mail bench
 * (bench/RESULTS-2026-11-26e.md) tidings' first timed run after a pause took
 * 1,000-1,800 µs of CPU a message against 700 in later runs; without the
 * reducer every run took 560-730 µs, and relaying with a connection per
 * message went from 1.7-2.3x Postfix to 2.7x. The heap stays at the size the
 * busiest moment needed, until a collection finds it can shrink.
 *
 * The same flags are written in package.json's start script, in the first
 * line of cli/tidings.ts and in contrib/tidings.service; test/unit/readme.test.ts
 * checks that they agree.
 */
export const NODE_FLAGS = ["--max-semi-space-size=32", "--no-memory-reducer"];
