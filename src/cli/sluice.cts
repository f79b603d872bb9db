#!/usr/bin/env node
/**
 * The `sluice` executable: sizes Node's libuv thread pool, then runs the CLI (main.js).
 *
 * DuckDB's calls (the store's commits, every query, view builds) and file I/O run on that
 * pool, which has 4 threads unless UV_THREADPOOL_SIZE says otherwise: with `query.readers`
 * (4) long queries running, a commit waited for one of them to end (6.2 s measured, against
 * 4 ms with 8 threads). libuv sizes the pool when it is first used, and an ES module entry is
 * read through the pool before its first line runs, so the size is set here, in a CommonJS
 * entry, which Node reads synchronously. A size the user set wins. (`node dist/cli/main.js`
 * still works, with Node's pool of 4.)
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
void import('./main.js');
