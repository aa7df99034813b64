/**
 * `buf.write(text, at)` without its argument handling: Node's Buffer#write
 * works out its (offset, length, encoding) overloads in JavaScript on every
 * call, which profiled at ~4× the copy itself for a 330-byte log line.
 * `utf8Write` is the binding it ends in (on Buffer.prototype since Node's
 * early days, not in the typings); if a Node ever lacks it, write() it is.
 * Writes at most what fits after `at`; returns the bytes written.
 */
type Utf8Write = (this: Buffer, text: string, at: number) => number;

const utf8Write: Utf8Write =
  (Buffer.prototype as unknown as { utf8Write?: Utf8Write }).utf8Write ??
  function (this: Buffer, text: string, at: number): number {
    return this.write(text, at);
  };

export function writeUtf8(buffer: Buffer, text: string, at: number): number {
  return utf8Write.call(buffer, text, at);
}
