/**
 * mosquitto.conf's `include_dir DIR`, as mosquitto reads it: every file of the directory whose name ends in
 * `.conf`, in case-sensitive alphabetical order (capitals first), read as if its lines stood in place of the
 * `include_dir` line. Only the main file may include (Debian's default `/etc/mosquitto/mosquitto.conf` ends
 * with `include_dir /etc/mosquitto/conf.d`). The result is one text for `parseMosquittoConf`, and a way to
 * name a line of it by its own file.
 *
 * @module
 */

import type { RuntimeProcess } from "../runtime/process_types.ts";

/** A mosquitto.conf with its included files spliced in. */
export interface MosquittoConfText {
  /** The lines of every file, in the order mosquitto reads them. */
  text: string;
  /**
   * Names the lines a message refers to by their files: `line 12` becomes `conf.d/bridge.conf, line 3`.
   *
   * @param message A message of `parseMosquittoConf`, which counts lines in `text`.
   */
  locate(message: string): string;
}

/**
 * Reads a mosquitto.conf and the files its `include_dir` lines name.
 *
 * @param file The main file's path (for messages).
 * @param text Its text.
 * @param proc Where the directories and files are read.
 * @returns The whole text, and the line naming for messages.
 * @throws {Error} Naming the line, when a directory cannot be read or an included file includes.
 */
export async function readMosquittoConf(
  file: string,
  text: string,
  proc: Pick<RuntimeProcess, "readDir" | "readFile">,
): Promise<MosquittoConfText> {
  const lines: string[] = [];
  /** For each line of `lines`, its file and line number there. */
  const origins: [string, number][] = [];
  const own = text.split(/\r?\n|\r/);
  for (let i = 0; i < own.length; i++) {
    const include = /^\s*include_dir\s+(.*?)\s*$/.exec(own[i]);
    if (include === null) {
      lines.push(own[i]);
      origins.push([file, i + 1]);
      continue;
    }
    const dir = include[1];
    const where = `${file}, line ${i + 1}`;
    if (dir === "") throw new Error(`${where}: include_dir needs a directory`);
    let names: string[];
    try {
      names = await proc.readDir(dir);
    } catch (error) {
      throw new Error(`${where}: cannot read include_dir "${dir}": ${(error as Error).message}`);
    }
    // Code unit order, as mosquitto's strcmp: capitals first.
    for (const name of names.filter((n) => n.endsWith(".conf")).sort()) {
      const path = `${dir.replace(/\/+$/, "")}/${name}`;
      let included: string;
      try {
        included = new TextDecoder().decode(await proc.readFile(path));
      } catch (error) {
        throw new Error(`${where}: cannot read "${path}": ${(error as Error).message}`);
      }
      included.split(/\r?\n|\r/).forEach((line, j) => {
        if (/^\s*include_dir(\s|$)/.test(line)) {
          throw new Error(`${path}, line ${j + 1}: include_dir is read in the main configuration file only`);
        }
        lines.push(line);
        origins.push([path, j + 1]);
      });
    }
  }
  return {
    text: lines.join("\n"),
    locate: (message) =>
      message.replace(/\bline (\d+)\b/g, (found, n: string) => {
        const origin = origins[Number(n) - 1];
        return origin === undefined ? found : `${origin[0]}, line ${origin[1]}`;
      }),
  };
}
