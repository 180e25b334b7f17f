/**
 * The process-level services a command needs, implemented once per runtime in `{deno,bun,node}/process.ts`.
 *
 * @module
 */

/** Arguments, standard streams, files, signals and exit, for the command-line tools. */
export interface RuntimeProcess {
  /** The command-line arguments after the script. */
  args(): string[];
  /** Writes text to standard output. */
  stdout(text: string): void;
  /** Writes text to standard error. */
  stderr(text: string): void;
  /** Standard input as bytes. */
  stdin(): ReadableStream<Uint8Array>;
  /** This computer's host name (mosquitto's default bridge client identifiers carry it). */
  hostname(): string;
  /** A whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** The names of a directory's entries. */
  readDir(path: string): Promise<string[]>;
  /** Writes a whole file, creating or replacing it. */
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Calls `listener` on SIGINT and SIGTERM; returns a function that stops listening. */
  onInterrupt(listener: () => void): () => void;
  /** Ends the process. */
  exit(code: number): never;
}
