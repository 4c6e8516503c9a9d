export * from './format.js';
export * from './select.js';
