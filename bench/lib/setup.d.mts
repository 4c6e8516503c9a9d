// Types of what the tests use from setup.mjs.
export function versions(): { node: string; rclone: string; nginx: string };
