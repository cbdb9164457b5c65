/** Downloading a file a reader attached (a Telegram document, a Discord attachment). */

/** A download's first `maxBytes + 1` bytes at most (more means the file is larger than asked). */
export async function readAtMost(url: URL | string, maxBytes: number): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok || response.body === null) throw new Error(`download failed: HTTP ${response.status}`);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  while (total <= maxBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.byteLength;
  }
  // Past the limit: the rest is not wanted.
  if (total > maxBytes) await reader.cancel();
  return Buffer.concat(parts).subarray(0, maxBytes + 1);
}
