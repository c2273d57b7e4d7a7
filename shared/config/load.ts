import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { compile, type CompileResult } from './compile/compile.ts';
import type { CompileOptions } from './compile/context.ts';
import { parseFolder, type ParseResult } from './parse.ts';
import { ConfigFolderError } from './config-folder-error.ts';

export { ConfigFolderError };

export interface LoadedConfig extends CompileResult {
  parse: ParseResult;
}

/** A config folder, parsed and compiled: what `validate`, `explain` and the proxies start from. */
export async function loadConfig(dir: string, options: CompileOptions = {}): Promise<LoadedConfig> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigFolderError(`config folder ${dir} does not exist or is not a folder`);
  const parse = await parseFolder(dir);
  return { ...compile(parse.resources, { readFile: folderReader(dir), ...options }), parse };
}

/** Reads files that config refers to (an ApiDefinition's OpenAPI document), never outside the folder. */
function folderReader(dir: string): (relativePath: string) => string | undefined {
  const root = resolve(dir);
  return (relativePath) => {
    const full = resolve(root, relativePath);
    if (full !== root && !full.startsWith(root + sep)) return undefined;
    try {
      return readFileSync(full, 'utf8');
    } catch {
      return undefined;
    }
  };
}
