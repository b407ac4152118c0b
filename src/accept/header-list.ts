/**
 * Header block size of an HTTP/2 request as RFC 9113 §6.5.2 counts it for
 * SETTINGS_MAX_HEADER_LIST_SIZE: the uncompressed octets of every field's name and value
 * plus 32 octets of overhead per field, pseudo-header fields included.
 *
 * Node advertises `maxHeaderListSize` but applies only the value the client has acknowledged
 * (nghttp2's local settings), and clients send their first requests before acknowledging; a
 * 40-60 KB block therefore passed where HTTP/1.1 answered 431. sluice measures each request
 * itself and answers 431 on HTTP/2 as on HTTP/1.1 (`limits.maxHeaderSize`).
 */
export function headerListSize(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i++) n += Buffer.byteLength(rawHeaders[i]!, 'latin1');
  return n + 16 * rawHeaders.length; // 32 per field, two entries per field
}
