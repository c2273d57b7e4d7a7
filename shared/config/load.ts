import { compile, type CompileResult } from './compile/compile.ts';
import type { CompileOptions } from './compile/context.ts';
import { parseFolder, type ParseResult } from './parse.ts';

export interface LoadedConfig extends CompileResult {
  parse: ParseResult;
}

/** A config folder, parsed and compiled: what `validate`, `explain` and the proxies start from. */
export async function loadConfig(dir: string, options: CompileOptions = {}): Promise<LoadedConfig> {
  const parse = await parseFolder(dir);
  return { ...compile(parse.resources, options), parse };
}
