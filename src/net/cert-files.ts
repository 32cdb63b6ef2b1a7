/**
 * Certificate and key files: the file I/O around the sans-IO ../tls/pem.ts and ../tls/verify.ts.
 * Reading a PEM file, loading a chain or a key from a path, the system trust store
 * (SSL_CERT_FILE or the distribution's CA bundle), and writing what `mquictt cert` generates.
 */
import { constants } from "node:fs";
import { access, chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PrivateKey } from "../crypto/provider.js";
import { MquicttError } from "../errors.js";
import type { GeneratedCertificate } from "../tls/certgen.js";
import { decodePem, loadCertificateChain, loadPrivateKey } from "../tls/pem.js";
import { TrustStore } from "../tls/verify.js";
import { type Certificate, parseCertificate } from "../tls/x509.js";

/** A certificate or key file that cannot be read or written; `code` is "ERR_CERT_FILE". */
export class CertificateFileError extends MquicttError {
  /** The file concerned. */
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super("ERR_CERT_FILE", message, options);
    this.path = path;
  }
}

function ioMessage(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  if (code === "EEXIST") return "it exists already";
  return (e as Error).message;
}

/**
 * Reads a PEM file as text.
 *
 * @throws {CertificateFileError} "cannot read certificate file ./server.pem: no such file".
 */
export async function readPemFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new CertificateFileError(path, `cannot read certificate file ${path}: ${ioMessage(e)}`, {
      cause: e,
    });
  }
}

/**
 * The certificates of a PEM file (leaf first for a server's chain), each checked to parse.
 *
 * @throws {CertificateFileError} when the file cannot be read.
 * @throws {import("../tls/cert-error.js").CertificateError} when it holds no or broken certificates.
 */
export async function loadCertificateFile(path: string): Promise<Uint8Array[]> {
  return loadCertificateChain(await readPemFile(path), path);
}

/**
 * The private key of a PEM file (PKCS#8, SEC1 or PKCS#1; see ../tls/pem.ts).
 *
 * @throws {CertificateFileError} when the file cannot be read.
 * @throws {import("../tls/cert-error.js").CertificateError} `CERT_BAD_KEY` for an unusable key.
 */
export async function loadPrivateKeyFile(path: string): Promise<PrivateKey> {
  return loadPrivateKey(await readPemFile(path), path);
}

/** Where distributions keep the system CA bundle, in the order we look. */
export const SYSTEM_CA_BUNDLES: readonly string[] = [
  "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Gentoo
  "/etc/pki/tls/certs/ca-bundle.crt", // Fedora, RHEL, CentOS
  "/etc/ssl/ca-bundle.pem", // openSUSE
  "/etc/pki/tls/cacert.pem", // OpenELEC
  "/etc/ssl/cert.pem", // Alpine, macOS, FreeBSD
];

/** The system trust store, loaded. */
export interface SystemRoots {
  /** The bundle file read. */
  readonly path: string;
  /** The certificates that parsed, DER. */
  readonly roots: Uint8Array[];
  /** The same, as a ready {@link TrustStore}. */
  readonly store: TrustStore;
  /** Entries skipped because they did not parse. */
  readonly skipped: number;
  /** Parsed roots whose key mquictt cannot verify with (e.g. EC P-384); kept, but they anchor nothing. */
  readonly unusableKeys: number;
}

/**
 * Loads the system's trusted roots: the file named by `SSL_CERT_FILE` if set, else the first
 * existing {@link SYSTEM_CA_BUNDLES} entry. Entries that do not parse are skipped quietly and
 * counted in `skipped`.
 *
 * @param options.env environment to read SSL_CERT_FILE from (default `process.env`).
 * @param options.path read exactly this bundle.
 * @throws {CertificateFileError} when no bundle exists or it cannot be read.
 */
export async function loadSystemRoots(
  options: { env?: Readonly<Record<string, string | undefined>>; path?: string } = {},
): Promise<SystemRoots> {
  const env = options.env ?? process.env;
  let path = options.path ?? env.SSL_CERT_FILE;
  if (path === undefined || path === "") {
    for (const candidate of SYSTEM_CA_BUNDLES) {
      try {
        await access(candidate, constants.R_OK);
        path = candidate;
        break;
      } catch {
        // try the next one
      }
    }
  }
  if (path === undefined || path === "") {
    throw new CertificateFileError(
      SYSTEM_CA_BUNDLES[0],
      `no system CA bundle found (looked for ${SYSTEM_CA_BUNDLES.join(", ")}); set SSL_CERT_FILE or give the CA file explicitly`,
    );
  }
  const text = await readPemFile(path);
  const roots: Uint8Array[] = [];
  const certificates: Certificate[] = [];
  let skipped = 0;
  let unusableKeys = 0;
  // Decode block by block so one damaged entry does not hide the others.
  for (const chunk of text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) {
    try {
      const [block] = decodePem(chunk);
      const cert = parseCertificate(block.der, `a root in ${path}`);
      roots.push(block.der);
      certificates.push(cert);
      if (cert.publicKey === undefined) unusableKeys++;
    } catch {
      skipped++;
    }
  }
  return { path, roots, store: new TrustStore(certificates), skipped, unusableKeys };
}

/** One certificate (and optionally its key) to write: `<name>.pem` and `<name>-key.pem`. */
export interface CertificateFileSet {
  /** File name stem, e.g. "server" → server.pem and server-key.pem. */
  readonly name: string;
  /** The certificate first, then any intermediates to send with it (not the root). */
  readonly chain: readonly GeneratedCertificate[];
  /** Write the first certificate's private key too (default true). */
  readonly writeKey?: boolean;
}

/**
 * Writes generated certificates into `dir` (created if missing): `<name>.pem` with the chain,
 * `<name>-key.pem` (mode 0600) with the PKCS#8 key. Refuses to replace existing files unless
 * `overwrite` is set. Returns the paths written.
 *
 * @throws {CertificateFileError} naming the file that exists or cannot be written.
 */
export async function writeCertificateFiles(
  dir: string,
  sets: readonly CertificateFileSet[],
  options: { overwrite?: boolean } = {},
): Promise<string[]> {
  const flag = options.overwrite ? "w" : "wx";
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CertificateFileError(dir, `cannot create directory ${dir}: ${ioMessage(e)}`, { cause: e });
  }
  const files: Array<{ path: string; text: string; mode: number }> = [];
  for (const set of sets) {
    if (set.chain.length === 0) throw new RangeError(`certificate set "${set.name}" has no certificate`);
    files.push({
      path: join(dir, `${set.name}.pem`),
      text: set.chain.map((c) => c.pem).join(""),
      mode: 0o644,
    });
    if (set.writeKey ?? true)
      files.push({ path: join(dir, `${set.name}-key.pem`), text: set.chain[0].keyPem, mode: 0o600 });
  }
  if (!options.overwrite) {
    for (const f of files) {
      const exists = await access(f.path).then(
        () => true,
        () => false,
      );
      if (exists)
        throw new CertificateFileError(f.path, `refusing to overwrite ${f.path}: it exists already`);
    }
  }
  const written: string[] = [];
  for (const f of files) {
    try {
      await writeFile(f.path, f.text, { flag, mode: f.mode });
      await chmod(f.path, f.mode); // an overwritten file keeps its old mode otherwise
    } catch (e) {
      throw new CertificateFileError(f.path, `cannot write ${f.path}: ${ioMessage(e)}`, { cause: e });
    }
    written.push(f.path);
  }
  return written;
}
