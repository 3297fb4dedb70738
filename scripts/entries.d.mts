/** See entries.mjs. */
export function packageEntries(): Record<string, { name: string; source: string }>;
