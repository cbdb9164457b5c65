/** The languages of Inkloom's own messages (the message catalogue in ./messages.ts). */
export const LOCALES = ["en", "zh"] as const;
export type Locale = (typeof LOCALES)[number];
