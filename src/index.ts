/**
 * sluice as a library: the producer SDK. The server is the `sluice` command (`sluice up`);
 * see the README.
 */
export { SluiceClient, SluiceError, type ClientOptions, type ClientStats, type DropReason, type EventMap, type TrackedEvent } from './client/index.js';
