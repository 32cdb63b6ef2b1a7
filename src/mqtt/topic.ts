/**
 * MQTT topic names and filters (MQTT 5.0 §4.7, §4.8.2; 3.1.1 §4.7): validation, wildcard
 * matching, shared-subscription syntax, and the strict UTF-8 rule of §1.5.4.
 *
 * Shared by the client and the broker; everything here is pure.
 */

/** Longest UTF-8 encoded string MQTT can carry (two-byte length prefix). [MQTT-4.7.3-3] */
export const MAX_TOPIC_BYTES = 65_535;

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Whether `bytes` is a well-formed MQTT UTF-8 string: valid UTF-8 without surrogate encodings
 * [MQTT-1.5.4-1] and without U+0000 [MQTT-1.5.4-2]. A leading BOM is kept, not stripped [MQTT-1.5.4-3].
 */
export function isValidMqttUtf8(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) return false;
    if (bytes[i]! >= 0x80) {
      try {
        strictDecoder.decode(bytes);
        return true;
      } catch {
        return false;
      }
    }
  }
  return true;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/**
 * Whether `topic` is a valid Topic Name for PUBLISH: at least one character [MQTT-4.7.3-1],
 * no wildcards [MQTT-3.3.2-2] [MQTT-4.7.0-1], no U+0000 [MQTT-4.7.3-2], at most 65535 bytes
 * [MQTT-4.7.3-3], no lone surrogates (they cannot be encoded as UTF-8) [MQTT-1.5.4-1].
 */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0) return false;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b /* + */ || c === 0x23 /* # */ || c === 0) return false;
    if (c >= 0xd800 && c <= 0xdfff && !validSurrogatePair(topic, i)) return false;
    if (c >= 0xd800 && c <= 0xdbff) i++;
  }
  return utf8Length(topic) <= MAX_TOPIC_BYTES;
}

function validSurrogatePair(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c > 0xdbff) return false;
  const d = s.charCodeAt(i + 1);
  return d >= 0xdc00 && d <= 0xdfff;
}

/**
 * Whether `filter` is a valid Topic Filter: `#` alone in the last level [MQTT-4.7.1-1], `+` alone
 * in its level [MQTT-4.7.1-2], non-empty [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], at most 65535
 * bytes [MQTT-4.7.3-3]. A shared filter (`$share/group/filter`) must also satisfy
 * {@link parseSharedFilter}.
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || utf8Length(filter) > MAX_TOPIC_BYTES) return false;
  if (filter.startsWith("$share/")) return parseSharedFilter(filter) !== undefined;
  return isValidPlainFilter(filter);
}

function isValidPlainFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const levels = filter.split("/");
  for (let l = 0; l < levels.length; l++) {
    const level = levels[l]!;
    if (level.includes("#") && (level !== "#" || l !== levels.length - 1)) return false;
    if (level.includes("+") && level !== "+") return false;
    for (let i = 0; i < level.length; i++) {
      const c = level.charCodeAt(i);
      if (c === 0) return false;
      if (c >= 0xd800 && c <= 0xdfff && !validSurrogatePair(level, i)) return false;
      if (c >= 0xd800 && c <= 0xdbff) i++;
    }
  }
  return true;
}

/** The parts of a shared subscription filter `$share/{group}/{filter}`. */
export interface SharedFilter {
  /** The ShareName. */
  readonly group: string;
  /** The Topic Filter after the ShareName. */
  readonly filter: string;
}

/**
 * Splits a shared subscription filter. Returns undefined when `filter` does not start with
 * `$share/` or is not a valid shared filter: the ShareName must be non-empty [MQTT-4.8.2-1]
 * without `/`, `+`, `#` and be followed by `/` and a valid filter [MQTT-4.8.2-2].
 */
export function parseSharedFilter(filter: string): SharedFilter | undefined {
  if (!filter.startsWith("$share/")) return undefined;
  const rest = filter.slice(7);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const group = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (group.includes("+") || group.includes("#")) return undefined;
  if (!isValidPlainFilter(inner)) return undefined;
  return { group, filter: inner };
}

/** Whether a filter contains a wildcard character. */
export function hasWildcard(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}

/**
 * Whether `topic` matches `filter` (both assumed valid; `filter` not shared). `+` matches one
 * level, `#` the parent level and everything below it; a filter that starts with a wildcard does
 * not match a topic that starts with `$` [MQTT-4.7.2-1]. No normalization [MQTT-4.7.3-4].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}
