// One implementation for the tests and the benchmarks.
export { chromiumPath, launchChromium } from '../../bench/browser.js';
