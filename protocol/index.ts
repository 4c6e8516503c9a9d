export * from './events.js';
export * from './progress.js';
export * from './reasons.js';
export * from './tasks.js';
export * from './units.js';
export * from './flags.js';
export * from './argv.js';
