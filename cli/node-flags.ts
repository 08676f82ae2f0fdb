/**
 * V8 options a node runs with. A larger young generation: with the default
 * (16 MB semi-spaces) the articles in flight between their arrival and their
 * COMMIT (a few thousand with several feeding peers) outlived scavenges and
 * were promoted, and collection took a quarter of the main thread; with 32 MB,
 * ingest of 1 KB articles on four connections went from 24-28k to 32-35k
 * articles/s here, and CPU per article from 55 to 42 µs (bench/RESULTS-*.md).
 * The same flags are written in package.json's start script, in the first
 * line of cli/tidings.ts and in contrib/tidings.service; test/unit/readme.test.ts
 * checks that they agree.
 */
export const NODE_FLAGS = ["--max-semi-space-size=32"];
